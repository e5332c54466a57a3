import { createHash } from 'node:crypto'
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../engine/index.js'

/**
 * The reference model: a plain POSIX tree in memory, with no layers at all. Every operation
 * answers what Linux answers for the caller root (errno precedence included), so any difference
 * from the store is a difference between Strata's overlay and a plain filesystem.
 */

export type Kind = 'file' | 'dir' | 'symlink' | 'fifo'

export const TYPE_BITS: Record<Kind, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000 }

const SYMLOOP_MAX = 40

export interface MNode {
  /** Identity of the inode; names that share an MNode are hard links. */
  id: number
  kind: Kind
  /** Permission bits (07777). */
  perm: number
  uid: number
  gid: number
  /** Names of a non-dir (dirs have exactly one). */
  nlink: number
  data: Buffer
  target: string
  entries: Map<string, MNode>
  /** The dir holding a dir ('..'); the root is its own parent. */
  parent: MNode | null
  xattrs: Map<string, Buffer>
  /** Known times in nanoseconds; undefined once an operation set them to "now". */
  atime?: bigint
  mtime?: bigint
}

/** An errno the model predicts. */
export class ModelError extends Error {
  constructor(readonly code: string) {
    super(code)
  }
}
const fail = (code: string): never => {
  throw new ModelError(code)
}

/** What a stat shows of one inode; `ino` is the model id here and st_ino on the store side. */
export interface Desc {
  type: Kind
  mode: number
  uid: number
  gid: number
  ino: number
  nlink: number
  /** Non-dirs only (a dir's st_size is not modelled). */
  size?: number
  /** Dirs only: how many subdirectories it holds, for the nlink rule. */
  subdirs?: number
  hash?: string
  target?: string
  xattrs: Record<string, string>
  atime?: bigint
  mtime?: bigint
}

export interface DirEntryValue {
  name: string
  type: Kind
  ino: number
}

export type Value =
  | { t: 'data'; size: number; hash: string }
  | { t: 'text'; v: string }
  | { t: 'names'; v: string[] }
  | { t: 'stat'; d: Desc }
  | { t: 'dir'; entries: DirEntryValue[] }

export type Outcome = { ok: true; value?: Value } | { ok: false; code: string }

export const hashOf = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex')
export const dataValue = (b: Uint8Array): Value => ({ t: 'data', size: b.length, hash: hashOf(b) })

export type OpenFlag = 'r' | 'r+' | 'w' | 'wx' | 'w+' | 'a' | 'a+'
const CREATES: ReadonlySet<OpenFlag> = new Set(['w', 'wx', 'w+', 'a', 'a+'])
const TRUNCATES: ReadonlySet<OpenFlag> = new Set(['w', 'wx', 'w+'])

export class FsModel {
  root: MNode
  private nextId: number

  constructor() {
    this.root = this.newNode(1, 'dir', 0o755, 0, 0)
    this.root.parent = this.root
    this.nextId = 2
  }

  private newNode(id: number, kind: Kind, perm: number, uid: number, gid: number): MNode {
    return { id, kind, perm, uid, gid, nlink: 1, data: Buffer.alloc(0), target: '', entries: new Map(), parent: null, xattrs: new Map() }
  }

  /** A deep copy that keeps hard links shared and ids unchanged. */
  clone(): FsModel {
    const copies = new Map<MNode, MNode>()
    const copy = (n: MNode, parent: MNode | null): MNode => {
      const seen = copies.get(n)
      if (seen) return seen
      const c: MNode = { ...n, data: Buffer.from(n.data), entries: new Map(), xattrs: new Map(n.xattrs), parent }
      copies.set(n, c)
      for (const [name, child] of n.entries) c.entries.set(name, copy(child, child.kind === 'dir' ? c : null))
      return c
    }
    const m = Object.create(FsModel.prototype) as FsModel
    m.root = copy(this.root, null)
    m.root.parent = m.root
    m.nextId = this.nextId
    return m
  }

  // ---- path walk (fs/namei.c as root: no permission refusals) ----

  /**
   * Resolves `path`. With `create`, a missing final name (also at the end of a followed symlink)
   * gives the dir to create it in instead of ENOENT, as open(O_CREAT) does.
   */
  walk(path: string, follow: boolean, create = false): { node: MNode } | { dir: MNode; name: string } {
    let cur = this.root
    let links = 0
    const queue = path.split('/').filter((c) => c !== '')
    while (queue.length > 0) {
      const name = queue.shift()!
      if (cur.kind !== 'dir') fail('ENOTDIR')
      if (name === '.') continue
      if (name === '..') { cur = cur.parent!; continue }
      const child = cur.entries.get(name)
      const last = queue.length === 0
      if (!child) {
        if (last && create) return { dir: cur, name }
        fail('ENOENT')
      }
      if (child!.kind === 'symlink' && (!last || follow)) {
        if (++links > SYMLOOP_MAX) fail('ELOOP')
        if (child!.target.startsWith('/')) cur = this.root
        queue.unshift(...child!.target.split('/').filter((c) => c !== ''))
        continue
      }
      cur = child!
    }
    return { node: cur }
  }

  resolve(path: string, follow: boolean): MNode {
    return (this.walk(path, follow) as { node: MNode }).node
  }

  /** The dir holding the last name of `path`; `name` is undefined for the root itself. */
  parentOf(path: string): { dir: MNode; name?: string } {
    const parts = path.split('/').filter((c) => c !== '')
    const name = parts.pop()
    if (name === undefined) return { dir: this.root }
    const dir = this.resolve('/' + parts.join('/'), true)
    if (dir.kind !== 'dir') fail('ENOTDIR')
    return { dir, name }
  }

  // ---- helpers ----

  private create(dir: MNode, name: string, kind: Kind, perm: number): MNode {
    // inode_init_owner: a setgid dir hands its group down, and its setgid bit to subdirs
    const setgidDir = (dir.perm & 0o2000) !== 0
    const node = this.newNode(this.nextId++, kind, perm, 0, setgidDir ? dir.gid : 0)
    if (kind === 'dir') {
      node.parent = dir
      if (setgidDir) node.perm |= 0o2000
    }
    dir.entries.set(name, node)
    dir.mtime = undefined
    return node
  }

  private dropName(dir: MNode, name: string): void {
    const node = dir.entries.get(name)!
    dir.entries.delete(name)
    dir.mtime = undefined
    if (node.kind !== 'dir') node.nlink--
  }

  private attempt(fn: () => Value | void): Outcome {
    try {
      const value = fn()
      return value ? { ok: true, value } : { ok: true }
    } catch (err) {
      if (err instanceof ModelError) return { ok: false, code: err.code }
      throw err
    }
  }

  // ---- open files ----

  /** open(2) of `path`: the inode a handle would refer to (created or truncated as the flags say). */
  open(path: string, flag: OpenFlag, mode: number): MNode {
    const creates = CREATES.has(flag)
    const excl = flag === 'wx'
    const r = this.walk(path, !excl, creates)
    let node: MNode
    if ('dir' in r) {
      node = this.create(r.dir, r.name, 'file', mode & 0o7777)
    } else {
      node = r.node
      if (excl) fail('EEXIST')
      if (node.kind === 'dir') fail('EISDIR')
      // Strata opens only regular files for data (documented in overlay/file.ts)
      if (node.kind !== 'file') fail('ENOTSUP')
      if (TRUNCATES.has(flag)) this.truncateNode(node, 0)
    }
    return node
  }

  tryOpen(path: string, flag: OpenFlag, mode: number): { node: MNode } | { code: string } {
    try {
      return { node: this.open(path, flag, mode) }
    } catch (err) {
      if (err instanceof ModelError) return { code: err.code }
      throw err
    }
  }

  /** pwrite(2); writing nothing changes nothing, not even past the end. */
  writeNode(node: MNode, pos: number, data: Uint8Array): void {
    if (data.length === 0) return
    const end = pos + data.length
    if (end > node.data.length) {
      const grown = Buffer.alloc(end)
      node.data.copy(grown)
      node.data = grown
    }
    node.data.set(data, pos)
    node.mtime = undefined
  }

  truncateNode(node: MNode, len: number): void {
    const next = Buffer.alloc(len)
    node.data.copy(next, 0, 0, Math.min(len, node.data.length))
    node.data = next
    node.mtime = undefined
  }

  readNode(node: MNode, pos: number, len: number): Buffer {
    return Buffer.from(node.data.subarray(Math.min(pos, node.data.length), Math.min(pos + len, node.data.length)))
  }

  // ---- operations, each answering like the syscall ----

  writeFile(path: string, data: Uint8Array, mode: number, flag: 'w' | 'wx' | 'a'): Outcome {
    return this.attempt(() => {
      const node = this.open(path, flag, mode)
      this.writeNode(node, flag === 'a' ? node.data.length : 0, data)
    })
  }

  writeAt(path: string, pos: number, data: Uint8Array): Outcome {
    return this.attempt(() => this.writeNode(this.open(path, 'r+', 0), pos, data))
  }

  truncate(path: string, len: number): Outcome {
    return this.attempt(() => this.truncateNode(this.open(path, 'r+', 0), len))
  }

  readFile(path: string): Outcome {
    return this.attempt(() => dataValue(this.open(path, 'r', 0).data))
  }

  unlink(path: string): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined) return fail('EISDIR')
      const node = dir.entries.get(name) ?? fail('ENOENT')
      if (node.kind === 'dir') fail('EISDIR')
      this.dropName(dir, name)
    })
  }

  mkdir(path: string, mode: number): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined || dir.entries.has(name)) return fail('EEXIST')
      // vfs_mkdir keeps only the permission and sticky bits of the mode asked for
      this.create(dir, name, 'dir', mode & 0o1777)
    })
  }

  rmdir(path: string): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined) return fail('EBUSY')
      const node = dir.entries.get(name) ?? fail('ENOENT')
      if (node.kind !== 'dir') fail('ENOTDIR')
      if (node.entries.size > 0) fail('ENOTEMPTY')
      this.dropName(dir, name)
    })
  }

  /** mknod(2) of a fifo or an empty regular file. */
  mknod(path: string, kind: 'fifo' | 'file', mode: number): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined || dir.entries.has(name)) return fail('EEXIST')
      this.create(dir, name, kind, mode & 0o777)
    })
  }

  symlink(target: string, path: string): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined || dir.entries.has(name)) return fail('EEXIST')
      this.create(dir, name, 'symlink', 0o777).target = target
    })
  }

  readlink(path: string): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, false)
      if (node.kind !== 'symlink') fail('EINVAL')
      return { t: 'text', v: node.target }
    })
  }

  /** linkat(2) without AT_SYMLINK_FOLLOW: the old path first, then the new name, then EPERM for a dir. */
  link(existing: string, newPath: string): Outcome {
    return this.attempt(() => {
      const node = this.resolve(existing, false)
      const { dir, name } = this.parentOf(newPath)
      if (name === undefined || dir.entries.has(name)) return fail('EEXIST')
      if (node.kind === 'dir') fail('EPERM')
      dir.entries.set(name, node)
      dir.mtime = undefined
      node.nlink++
    })
  }

  /** renameat2(2), in the order fs/namei.c checks things. */
  rename(from: string, to: string, flags: number): Outcome {
    return this.attempt(() => {
      const exchange = (flags & RENAME_EXCHANGE) !== 0
      const noreplace = (flags & RENAME_NOREPLACE) !== 0
      if (flags & ~(RENAME_EXCHANGE | RENAME_NOREPLACE) || (exchange && noreplace)) fail('EINVAL')
      const s = this.parentOf(from)
      const d = this.parentOf(to)
      if (s.name === undefined) return fail('EBUSY')
      if (d.name === undefined) return fail(noreplace ? 'EEXIST' : 'EBUSY')
      const src = s.dir.entries.get(s.name) ?? fail('ENOENT')
      const dst = d.dir.entries.get(d.name)
      if (noreplace && dst) fail('EEXIST')
      if (exchange && !dst) fail('ENOENT')
      if (s.dir !== d.dir) {
        // lock_rename's trap: the child of one parent that is an ancestor of the other
        const srcTrap = childToward(s.dir, d.dir)
        if (srcTrap) {
          if (srcTrap === src) fail('EINVAL')
        } else if (dst && childToward(d.dir, s.dir) === dst) {
          fail(exchange ? 'EINVAL' : 'ENOTEMPTY')
        }
      }
      if (dst === src) return
      if (dst && !exchange) {
        if (src.kind === 'dir' && dst.kind !== 'dir') fail('ENOTDIR')
        if (src.kind !== 'dir' && dst.kind === 'dir') fail('EISDIR')
        if (dst.kind === 'dir' && dst.entries.size > 0) fail('ENOTEMPTY')
      }
      if (exchange) {
        s.dir.entries.set(s.name, dst!)
        d.dir.entries.set(d.name, src)
        if (dst!.kind === 'dir') dst!.parent = s.dir
      } else {
        if (dst) this.dropName(d.dir, d.name)
        s.dir.entries.delete(s.name)
        d.dir.entries.set(d.name, src)
      }
      if (src.kind === 'dir') src.parent = d.dir
      s.dir.mtime = undefined
      d.dir.mtime = undefined
    })
  }

  chmod(path: string, mode: number): Outcome {
    return this.attempt(() => {
      this.resolve(path, true).perm = mode & 0o7777
    })
  }

  /** chown(2)/lchown(2); -1 keeps a field. A non-dir always loses setuid, and setgid when group-executable. */
  chown(path: string, uid: number, gid: number, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      if (uid !== -1) node.uid = uid
      if (gid !== -1) node.gid = gid
      if (node.kind !== 'dir') {
        node.perm &= ~0o4000
        if (node.perm & 0o010) node.perm &= ~0o2000
      }
    })
  }

  utimes(path: string, atime: bigint | null, mtime: bigint | null, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      node.atime = atime ?? undefined
      node.mtime = mtime ?? undefined
    })
  }

  /** flags: 1 XATTR_CREATE, 2 XATTR_REPLACE. user.* lives on regular files and dirs only. */
  setxattr(path: string, name: string, value: Buffer, flags: number, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      if (name.startsWith('user.') && node.kind !== 'file' && node.kind !== 'dir') fail('EPERM')
      const exists = node.xattrs.has(name)
      if (flags & 1 && exists) fail('EEXIST')
      if (flags & 2 && !exists) fail('ENODATA')
      node.xattrs.set(name, Buffer.from(value))
    })
  }

  removexattr(path: string, name: string, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      if (name.startsWith('user.') && node.kind !== 'file' && node.kind !== 'dir') fail('EPERM')
      if (!node.xattrs.delete(name)) fail('ENODATA')
    })
  }

  getxattr(path: string, name: string, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      if (name.startsWith('user.') && node.kind !== 'file' && node.kind !== 'dir') fail('ENODATA')
      const v = node.xattrs.get(name) ?? fail('ENODATA')
      return { t: 'text', v: v.toString('hex') }
    })
  }

  listxattr(path: string, follow: boolean): Outcome {
    return this.attempt(() => ({ t: 'names', v: [...this.resolve(path, follow).xattrs.keys()].sort() }))
  }

  stat(path: string, follow: boolean): Outcome {
    return this.attempt(() => ({ t: 'stat', d: describe(this.resolve(path, follow)) }))
  }

  readdir(path: string): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, true)
      if (node.kind !== 'dir') fail('ENOTDIR')
      return { t: 'dir', entries: dirEntries(node) }
    })
  }
}

/** The child of `ancestor` on the way down to `dir`, or undefined when `ancestor` is not above `dir`. */
function childToward(ancestor: MNode, dir: MNode): MNode | undefined {
  let cur = dir
  while (cur.parent !== cur) {
    if (cur.parent === ancestor) return cur
    cur = cur.parent!
  }
  return undefined
}

export function dirEntries(dir: MNode): DirEntryValue[] {
  return [...dir.entries].map(([name, n]) => ({ name, type: n.kind, ino: n.id })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

export function describe(node: MNode): Desc {
  const d: Desc = {
    type: node.kind,
    mode: TYPE_BITS[node.kind] | node.perm,
    uid: node.uid,
    gid: node.gid,
    ino: node.id,
    nlink: node.kind === 'dir' ? 0 : node.nlink,
    xattrs: Object.fromEntries([...node.xattrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.toString('hex')])),
  }
  if (node.kind === 'dir') d.subdirs = [...node.entries.values()].filter((c) => c.kind === 'dir').length
  else d.size = node.kind === 'symlink' ? Buffer.byteLength(node.target) : node.data.length
  if (node.kind === 'file') d.hash = hashOf(node.data)
  if (node.kind === 'symlink') d.target = node.target
  if (node.atime !== undefined) d.atime = node.atime
  if (node.mtime !== undefined) d.mtime = node.mtime
  return d
}

/** Every name of the tree (symlinks not followed), '/' first, with what stat shows of it. */
export function captureModel(model: FsModel): Map<string, Desc> {
  const out = new Map<string, Desc>()
  const visit = (path: string, node: MNode): void => {
    out.set(path, describe(node))
    if (node.kind !== 'dir') return
    for (const [name, child] of node.entries) visit(path === '/' ? `/${name}` : `${path}/${name}`, child)
  }
  visit('/', model.root)
  return out
}
