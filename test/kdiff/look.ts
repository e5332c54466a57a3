import { createHash } from 'node:crypto'
import { typeOfMode, type EntryType, type FsUnderTest, type StatLike } from './fsut.js'

/**
 * One path as both sides should show it, for the look right after an operation (whole trees are
 * compared with test/treecompare.ts): type, mode, owner, size, content hash, symlink target, user
 * xattrs. Inode numbers, link counts, times and dir sizes legitimately differ.
 */

export interface PathLook {
  type: EntryType
  /** Octal, type bits included. */
  mode: string
  uid: number
  gid: number
  size?: number
  hash?: string
  target?: string
  /** user.* xattrs as `name=hex` pairs, sorted. */
  xattrs?: string
}

export const childPath = (dir: string, name: string): string => (dir === '/' ? `/${name}` : `${dir}/${name}`)

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex')

/** One path's look; content is hashed only up to `hashLimit` bytes of size (the size still counts). */
export async function lookAt(fs: FsUnderTest, path: string, st: StatLike, hashLimit = Infinity): Promise<PathLook> {
  const type = typeOfMode(st.mode)
  const e: PathLook = { type, mode: st.mode.toString(8), uid: st.uid, gid: st.gid }
  if (type !== 'dir') e.size = Number(st.size)
  if (type === 'file' && st.size <= hashLimit) e.hash = sha1(await fs.readFile(path))
  if (type === 'symlink') e.target = await fs.readlink(path)
  // user.* xattrs cannot be set on symlinks, and the xattr calls would follow them
  if (type === 'file' || type === 'dir') {
    const names = (await fs.listxattr(path)).filter((n) => n.startsWith('user.')).sort()
    const pairs: string[] = []
    for (const n of names) pairs.push(`${n}=${(await fs.getxattr(path, n)).toString('hex')}`)
    if (pairs.length > 0) e.xattrs = pairs.join(' ')
  }
  return e
}

/** A path's look (and a dir's names), or the errno code of its lstat, as one comparable line. */
export async function peek(fs: FsUnderTest, path: string, hashLimit: number): Promise<string> {
  try {
    const e = await lookAt(fs, path, await fs.lstat(path), hashLimit)
    const names = e.type === 'dir' ? ` [${(await fs.readdir(path)).map((d) => `${d.name}:${d.type}`).sort().join(' ')}]` : ''
    return JSON.stringify(e) + names
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') return code
    throw err
  }
}
