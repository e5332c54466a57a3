import { createHash } from 'node:crypto'
import { lstat, readFile, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { getAttribute, listAttributes } from 'fs-xattr'
import type { SnapshotFs } from '../engine/index.js'

/**
 * A tree in canonical form, read the same way from a host path (node:fs, e.g. a kernel overlay
 * mount) or from a snapshot (SnapshotFs), so the two can be compared with deepEqual:
 *
 *   const [want, got] = [await readTree('/mnt/ovl'), await readTree(store.fs('snap'))]
 *   assert.deepEqual(diffTrees(want, got), [])
 *
 * Left out on purpose, as they differ between two faithful copies of a tree: times, inode
 * numbers (only which names share one counts), link counts (the kernel reports 1 for a merged
 * dir), dir sizes, and xattrs outside `user.*` (unless `xattrs` says otherwise).
 */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev'
  /** Full st_mode, type bits included. */
  mode: number
  uid: number
  gid: number
  /** Non-dirs only. */
  size?: number
  /** Regular files: sha256 of the content, hex. */
  sha256?: string
  /** Symlinks. */
  target?: string
  /** Devices. */
  rdev?: number
  /** Name → value as hex; symlinks have none (node's xattr binding follows symlinks). */
  xattrs: Record<string, string>
}

export interface Tree {
  /** By path from the root: '/', '/a', '/a/b'. */
  entries: Record<string, TreeEntry>
  /** Non-dirs that share an inode: each group's paths sorted, groups sorted by first path. */
  links: string[][]
  /** With `unreadable`: paths whose lstat failed, with the errno code. */
  errors?: Record<string, string>
}

export interface ReadTreeOptions {
  /** Which xattrs to compare (default: `user.*`). */
  xattrs?: (name: string) => boolean
  /** Record a name whose lstat fails (listed, yet refused: a redirect the policy forbids) instead of throwing. */
  unreadable?: boolean
}

/** Reads a tree from a host dir (a path) or a snapshot (a SnapshotFs). */
export async function readTree(source: string | SnapshotFs, opts: ReadTreeOptions = {}): Promise<Tree> {
  const io = typeof source === 'string' ? hostReader(source) : snapshotReader(source)
  const wanted = opts.xattrs ?? ((n: string) => n.startsWith('user.'))
  const entries: Record<string, TreeEntry> = {}
  const byIno = new Map<number, string[]>()
  const errors: Record<string, string> = {}
  const visit = async (path: string): Promise<void> => {
    let st: Awaited<ReturnType<TreeIo['lstat']>>
    try {
      st = await io.lstat(path)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (!opts.unreadable || typeof code !== 'string') throw err
      errors[path] = code
      return
    }
    const type = typeName(st.mode)
    const e: TreeEntry = { type, mode: st.mode, uid: st.uid, gid: st.gid, xattrs: {} }
    if (type !== 'dir') {
      e.size = st.size
      byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), path])
    }
    if (type === 'file') e.sha256 = createHash('sha256').update(await io.readFile(path)).digest('hex')
    if (type === 'symlink') e.target = await io.readlink(path)
    if (type === 'chardev' || type === 'blockdev') e.rdev = st.rdev
    if (type !== 'symlink') {
      for (const name of (await io.listxattr(path)).filter(wanted).sort()) e.xattrs[name] = (await io.getxattr(path, name)).toString('hex')
    }
    entries[path] = e
    if (type === 'dir') for (const name of (await io.readdir(path)).sort()) await visit(path === '/' ? `/${name}` : `${path}/${name}`)
  }
  await visit('/')
  const links = [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => (a[0] < b[0] ? -1 : 1))
  return opts.unreadable ? { entries, links, errors } : { entries, links }
}

/** Human-readable differences, empty when the trees are the same. */
export function diffTrees(expected: Tree, actual: Tree): string[] {
  const out: string[] = []
  const paths = [...new Set([...Object.keys(expected.entries), ...Object.keys(actual.entries)])].sort()
  for (const p of paths) {
    const [e, a] = [expected.entries[p], actual.entries[p]]
    if (!a) out.push(`${p}: missing`)
    else if (!e) out.push(`${p}: unexpected ${a.type}`)
    else if (JSON.stringify(e) !== JSON.stringify(a)) out.push(`${p}: expected ${JSON.stringify(e)}, got ${JSON.stringify(a)}`)
  }
  if (JSON.stringify(expected.errors) !== JSON.stringify(actual.errors)) out.push(`unreadable: expected ${JSON.stringify(expected.errors)}, got ${JSON.stringify(actual.errors)}`)
  if (JSON.stringify(expected.links) !== JSON.stringify(actual.links)) out.push(`hard links: expected ${JSON.stringify(expected.links)}, got ${JSON.stringify(actual.links)}`)
  return out
}

interface TreeIo {
  lstat(path: string): Promise<{ mode: number; uid: number; gid: number; size: number; ino: number; rdev: number }>
  readdir(path: string): Promise<string[]>
  readlink(path: string): Promise<string>
  readFile(path: string): Promise<Buffer>
  listxattr(path: string): Promise<string[]>
  getxattr(path: string, name: string): Promise<Buffer>
}

function hostReader(root: string): TreeIo {
  const at = (p: string): string => join(root, p)
  return {
    lstat: (p) => lstat(at(p)),
    readdir: (p) => readdir(at(p)),
    readlink: (p) => readlink(at(p)),
    readFile: (p) => readFile(at(p)),
    listxattr: (p) => listAttributes(at(p)),
    getxattr: (p, n) => getAttribute(at(p), n),
  }
}

function snapshotReader(fs: SnapshotFs): TreeIo {
  return {
    lstat: (p) => fs.lstat(p),
    readdir: (p) => fs.readdir(p),
    readlink: (p) => fs.readlink(p),
    readFile: (p) => fs.readFile(p),
    listxattr: (p) => fs.listxattr(p, { follow: false }),
    getxattr: (p, n) => fs.getxattr(p, n, { follow: false }),
  }
}

function typeName(mode: number): TreeEntry['type'] {
  switch (mode & 0o170000) {
    case 0o100000: return 'file'
    case 0o040000: return 'dir'
    case 0o120000: return 'symlink'
    case 0o010000: return 'fifo'
    case 0o140000: return 'socket'
    case 0o020000: return 'chardev'
    case 0o060000: return 'blockdev'
    default: throw new Error(`unknown file type in mode ${mode.toString(8)}`)
  }
}
