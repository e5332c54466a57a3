import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs'
import { readlink } from 'node:fs/promises'
import { setImmediate } from 'node:timers/promises'
import { join } from 'node:path'
import { T, typeOf } from '../overlay/node.js'
import { fsError } from '../errors.js'

/** One object of a host tree, as lstat showed it when the tree was scanned. */
export interface HostEntry {
  name: string
  path: string
  /** dev:ino, exact (bigint) so distinct host inodes never compare equal. */
  key: string
  dev: number
  ino: number
  mode: number
  uid: number
  gid: number
  rdev: number
  size: number
  nlink: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  children?: HostEntry[]
}

export const hostKey = (st: BigIntStats): string => `${st.dev}:${st.ino}`
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The host tree, read once up front: what to import, and how many bytes of file data that is.
 * Each dir is listed and stat'ed with blocking calls, which take a fifth of the time that the
 * same calls through the thread pool take (bench/engine.ts, resnapshot); the event loop gets
 * its turn between dirs.
 */
export class HostScan {
  bytes = 0
  private readonly counted = new Set<string>()

  /** `skipKey`: the host object (the store itself) that is left out of the tree. */
  constructor(private readonly skipKey: string | undefined) {}

  async tree(path: string, st: BigIntStats): Promise<HostEntry> {
    const root = entryOf('', path, st)
    await this.fill(root)
    return root
  }

  private async fill(dir: HostEntry): Promise<void> {
    await setImmediate()
    const names = readdirSync(dir.path, { encoding: 'buffer' }).map((b) => decodeName(b, dir.path)).sort()
    const children: HostEntry[] = []
    for (const n of names) {
      const path = join(dir.path, n)
      const st = lstatSync(path, { bigint: true })
      if (hostKey(st) !== this.skipKey) children.push(entryOf(n, path, st))
    }
    dir.children = children
    for (const c of children) {
      const t = typeOf(c.mode)
      if (t === T.DIR) await this.fill(c)
      else if (t === T.REG && !this.counted.has(c.key)) {
        this.bytes += c.size
        if (c.nlink > 1) this.counted.add(c.key)
      }
    }
  }
}

function decodeName(raw: Buffer, dir: string): string {
  try {
    return utf8.decode(raw)
  } catch {
    throw fsError('EINVAL', 'snapshotDir', join(dir, raw.toString('latin1')), 'file name is not valid UTF-8; snapshot names are UTF-8 strings')
  }
}

function entryOf(name: string, path: string, st: BigIntStats): HostEntry {
  return {
    name, path, key: hostKey(st), dev: Number(st.dev), ino: Number(st.ino),
    mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), rdev: Number(st.rdev), size: Number(st.size), nlink: Number(st.nlink),
    atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
  }
}

export async function readHostLink(path: string): Promise<string> {
  return linkTarget(await readlink(path, { encoding: 'buffer' }), path)
}

/** readHostLink with a blocking call (a symlink's target is one small read). */
export function readHostLinkSync(path: string): string {
  return linkTarget(readlinkSync(path, { encoding: 'buffer' }), path)
}

function linkTarget(raw: Buffer, path: string): string {
  try {
    return utf8.decode(raw)
  } catch {
    throw fsError('EINVAL', 'snapshotDir', path, 'symlink target is not valid UTF-8')
  }
}
