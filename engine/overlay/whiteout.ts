import type { InodeRecord } from '../store/records.js'

/**
 * Whiteout and opaque tests, in one place, for both forms a layer can take.
 *
 * Store layers: a whiteout is an entry record of [0, 0]; opacity is a flag of the directory inode.
 *
 * Directories in the kernel's on-disk format: a whiteout is a char device 0/0, or a zero-size
 * regular file carrying the `overlay.whiteout` xattr (an "xwhiteout"). A dir is opaque when
 * `overlay.opaque` is `y`; `x` marks a merge dir that holds xwhiteouts and is not opaque. The
 * kernel's lookup honours an xwhiteout in any dir, its readdir only in a dir marked `x` (so an
 * unmarked one is listed yet not found); here it hides the name in both. The xattrs carry the
 * `trusted.` prefix, or `user.` with the `userxattr` option.
 */
export const isWhiteoutEntry = (e: readonly [number, number]): boolean => e[0] === 0

export const isOpaqueDir = (rec: InodeRecord | undefined): boolean => rec?.opaque === true

/** The overlay's own xattr names in a layer directory. */
export interface OverlayXattrNames {
  prefix: string
  opaque: string
  redirect: string
  whiteout: string
  origin: string
  metacopy: string
}

export function overlayXattrNames(userxattr = false): OverlayXattrNames {
  const prefix = userxattr ? 'user.overlay.' : 'trusted.overlay.'
  return {
    prefix,
    opaque: `${prefix}opaque`,
    redirect: `${prefix}redirect`,
    whiteout: `${prefix}whiteout`,
    origin: `${prefix}origin`,
    metacopy: `${prefix}metacopy`,
  }
}

const S_IFMT = 0o170000
const S_IFCHR = 0o020000
const S_IFREG = 0o100000

/** A char device 0/0: the whiteout the kernel creates. */
export const isWhiteoutDevice = (mode: number, rdev: number): boolean => (mode & S_IFMT) === S_IFCHR && rdev === 0

/** A zero-size regular file with the whiteout xattr. */
export function isXattrWhiteout(mode: number, size: number, hasWhiteoutXattr: boolean): boolean {
  return (mode & S_IFMT) === S_IFREG && size === 0 && hasWhiteoutXattr
}

/** What a dir's `overlay.opaque` value says: opaque ('y'), holding xwhiteouts ('x'), or neither. */
export function parseOpaqueXattr(value: Buffer | undefined): { opaque: boolean; xwhiteouts: boolean } {
  const v = value?.toString('latin1')
  return { opaque: v === 'y', xwhiteouts: v === 'x' }
}

/**
 * The overlay's own xattrs (`trusted.overlay.*`): markers of a layer, never a file's data, never
 * shown to callers nor carried by a copy-up or a tar.
 */
export const isOverlayPrivateXattr = (name: string): boolean => name.startsWith('trusted.overlay.')

/** The value written to make a dir opaque. */
export const OPAQUE_VALUE = Buffer.from('y')

/**
 * In a layer dir, `<prefix>*` xattrs are the overlay's own markers (opaque, redirect, whiteout,
 * origin, impure, metacopy...), except the escaped `<prefix>overlay.*`, which are a file's own.
 * `trusted.overlay.*` is never file data in the store, whatever the prefix in use.
 */
const ESCAPE = 'overlay.'
const TRUSTED_PREFIX = 'trusted.overlay.'

/**
 * The name under which a layer dir keeps a file's xattr. A file's own `<prefix>X` is escaped as
 * `<prefix>overlay.X` (kernel 6.7 and later), which the overlay shows as `<prefix>X` rather than
 * taking it for a marker.
 */
export function layerXattrName(name: string, n: OverlayXattrNames): string {
  return name.startsWith(n.prefix) ? `${n.prefix}${ESCAPE}${name.slice(n.prefix.length)}` : name
}

/**
 * The file's xattr that a layer dir's xattr stands for (escaped names unescaped), or undefined
 * for the overlay's own markers.
 */
export function fileXattrName(name: string, n: OverlayXattrNames): string | undefined {
  let file = name
  if (name.startsWith(n.prefix)) {
    const rest = name.slice(n.prefix.length)
    if (!rest.startsWith(ESCAPE)) return undefined
    file = n.prefix + rest.slice(ESCAPE.length)
  }
  return file.startsWith(TRUSTED_PREFIX) ? undefined : file
}

/** The device number of the kernel's whiteout (a char device); its permission bits carry no meaning. */
export const WHITEOUT_RDEV = 0
