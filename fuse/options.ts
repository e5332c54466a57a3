import { resolve } from 'node:path'
import { fsError } from '../engine/errors.js'
import type { RedirectPolicy } from '../engine/index.js'

/**
 * `-o` option strings of a mount, in the kernel overlayfs's terms: `lowerdir=A:B` (top first),
 * `upperdir=`, `workdir=`, `redirect_dir=`, `userxattr`, plus Strata's `snapshot=NAME` (a
 * committed store snapshot as the bottom of the stack) and `store=DIR`, and the options
 * mount(8) and fstab pass to every filesystem.
 */
export interface MountOptionSet {
  /** `ro` given (and not overridden by a later `rw`). */
  readOnly: boolean
  /** Lower dirs, top first, absolute. */
  lowerdir: string[]
  upperdir?: string
  workdir?: string
  redirectDir?: RedirectPolicy
  userxattr: boolean
  /** Committed snapshot under the lower dirs. */
  snapshot?: string
  /** Store holding `snapshot`. */
  store?: string
  /** Source column of the mount table. */
  fsname?: string
  /** Whether any layer option was given (a directory-stack mount rather than a snapshot's). */
  layers: boolean
  /** Flags the kernel applies to any mount (nosuid, nodev, noexec, noatime…), in the order given: the FUSE mount gets them. */
  vfs: string[]
}

/** Mount flags the kernel's VFS applies to a mount of any filesystem (later ones override earlier ones). */
const VFS_FLAGS = new Set([
  'suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec', 'atime', 'noatime', 'diratime', 'nodiratime', 'relatime', 'norelatime',
  'strictatime', 'nostrictatime', 'lazytime', 'nolazytime', 'sync', 'async', 'dirsync',
])

/** Other options every filesystem takes from mount(8) or fstab, with no effect on the mount itself. */
const GENERIC = new Set([
  'defaults', 'auto', 'noauto', 'nofail', 'user', 'nouser', 'users', 'owner', 'group', '_netdev', 'silent', 'loud', 'mand',
  'nomand', 'iversion', 'noiversion', 'comment',
  // FUSE options Strata always sets itself
  'allow_other', 'default_permissions', 'subtype',
  // overlayfs options whose effect Strata has anyway (volatile: syncs are cheap; uuid, xino: inode numbers are Strata's own)
  'volatile', 'uuid', 'xino',
])

/** overlayfs features Strata does not implement: accepted only when turned off. */
const OFF_ONLY = new Set(['index', 'nfs_export', 'metacopy', 'verity'])

const REDIRECT: readonly RedirectPolicy[] = ['on', 'follow', 'nofollow', 'off']

export interface ParseOptions {
  /** Relative paths are the mounter's, as for the kernel. */
  cwd: string
  /** mount(8)'s `-s`: tolerate options this filesystem does not know. */
  sloppy?: boolean
  /** Named in errors. */
  mountpoint?: string
}

/** Parses `-o` strings (each comma-separated; later options override earlier ones, as the kernel's). */
export function parseMountOptions(strings: readonly string[], opts: ParseOptions): MountOptionSet {
  const set: MountOptionSet = { readOnly: false, lowerdir: [], userxattr: false, layers: false, vfs: [] }
  const bad = (detail: string, code: 'EINVAL' | 'ENOTSUP' = 'EINVAL') => fsError(code, 'mount', opts.mountpoint, detail)
  const path = (value: string) => resolve(opts.cwd, unescape(value))
  for (const str of strings) {
    for (const option of splitUnescaped(str, ',')) {
      if (option === '') continue
      const eq = option.indexOf('=')
      const name = eq < 0 ? option : option.slice(0, eq)
      const value = eq < 0 ? undefined : option.slice(eq + 1)
      const needValue = (): string => {
        if (value === undefined || value === '') throw bad(`missing value for '${name}'`)
        return value
      }
      switch (name) {
        case 'ro':
        case 'rw':
          set.readOnly = name === 'ro'
          break
        case 'lowerdir': {
          const parts = splitUnescaped(needValue(), ':')
          const empty = parts.indexOf('')
          if (empty > 0 && empty < parts.length - 1) throw bad("data-only lower layers ('::' in lowerdir) are not supported", 'ENOTSUP')
          if (empty >= 0) throw bad(`empty lower dir in '${option}'`)
          set.lowerdir = parts.map(path)
          set.layers = true
          break
        }
        case 'lowerdir+':
          set.lowerdir.push(path(needValue()))
          set.layers = true
          break
        case 'datadir+':
          throw bad("data-only lower layers ('datadir+') are not supported", 'ENOTSUP')
        case 'upperdir':
          set.upperdir = path(needValue())
          set.layers = true
          break
        case 'workdir':
          set.workdir = path(needValue())
          set.layers = true
          break
        case 'redirect_dir': {
          const v = needValue()
          if (!(REDIRECT as readonly string[]).includes(v)) throw bad(`Bad value for 'redirect_dir': '${v}' (on, follow, nofollow or off)`)
          set.redirectDir = v as RedirectPolicy
          break
        }
        case 'userxattr':
          set.userxattr = true
          break
        case 'snapshot':
          set.snapshot = needValue()
          set.layers = true
          break
        case 'store':
          set.store = path(needValue())
          break
        case 'fsname':
          set.fsname = needValue()
          break
        default:
          if (VFS_FLAGS.has(name) && value === undefined) {
            set.vfs.push(name)
          } else if (OFF_ONLY.has(name)) {
            if (value !== 'off') throw bad(`'${option}' is not supported (only ${name}=off)`, 'ENOTSUP')
          } else if (!GENERIC.has(name) && !/^x-/i.test(name) && !opts.sloppy) {
            throw bad(`Unknown parameter '${name}'`)
          }
      }
    }
  }
  return set
}

/** Splits at `sep` except where a backslash escapes it (the kernel's rule for overlay options). */
export function splitUnescaped(str: string, sep: string): string[] {
  const parts: string[] = []
  let current = ''
  for (let i = 0; i < str.length; i++) {
    const c = str[i]
    if (c === '\\' && i + 1 < str.length) {
      current += c + str[++i]
    } else if (c === sep) {
      parts.push(current)
      current = ''
    } else current += c
  }
  parts.push(current)
  return parts
}

/** Removes the escaping backslashes, as the kernel does with a layer path. */
function unescape(value: string): string {
  return value.replace(/\\(.)/g, '$1')
}
