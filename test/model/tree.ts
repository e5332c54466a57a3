import { RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../engine/index.js'
import { dataValue, type Kind, type MNode, type Outcome, type Value } from './values.js'
import { describe, dirEntries } from './describe.js'
import { CALLERS, MAY_EXEC, MAY_READ, MAY_WRITE, S_ISGID, afterChown, afterWrite, inGroup, isRoot, newOwnership, owns, permits, stickyRefuses, type Caller } from './perm.js'

/**
 * The reference model: a plain POSIX tree in memory, with no layers at all. Every operation
 * answers what Linux answers (errno precedence included) for the caller in `caller`, so any
 * difference from the store is a difference between Strata's overlay and a plain filesystem.
 */

const SYMLOOP_MAX = 40

/** An errno the model predicts. */
export class ModelError extends Error {
  constructor(readonly code: string) {
    super(code)
  }
}
const fail = (code: string): never => {
  throw new ModelError(code)
}

export type OpenFlag = 'r' | 'r+' | 'w' | 'wx' | 'w+' | 'a' | 'a+'
const CREATES: ReadonlySet<OpenFlag> = new Set(['w', 'wx', 'w+', 'a', 'a+'])
const TRUNCATES: ReadonlySet<OpenFlag> = new Set(['w', 'wx', 'w+'])

export class FsModel {
  root: MNode
  /** Who runs the next operations. */
  caller: Caller = CALLERS[0]
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
    m.caller = CALLERS[0]
    return m
  }

  /** A copy of `base` whose new inodes get ids that `this` has not used either (for a branch). */
  branchOf(base: FsModel): FsModel {
    const m = base.clone()
    m.nextId = Math.max(base.nextId, this.nextId)
    return m
  }

  // ---- path walk (fs/namei.c) ----

  /**
   * Resolves `path`. With `create`, a missing final name (also at the end of a followed symlink)
   * gives the dir to create it in instead of ENOENT, as open(O_CREAT) does. A trailing slash
   * follows a final symlink and asks for a dir (LOOKUP_DIRECTORY).
   */
  walk(path: string, followLast: boolean, create = false): { node: MNode } | { dir: MNode; name: string } {
    let cur = this.root
    let links = 0
    const queue = path.split('/').filter((c) => c !== '')
    const slash = hasTrailingSlash(path)
    const follow = followLast || slash
    while (queue.length > 0) {
      const name = queue.shift()!
      if (cur.kind !== 'dir') fail('ENOTDIR')
      this.need(cur, MAY_EXEC)
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
    if (slash && cur.kind !== 'dir') fail('ENOTDIR')
    return { node: cur }
  }

  resolve(path: string, follow: boolean): MNode {
    return (this.walk(path, follow) as { node: MNode }).node
  }

  /**
   * The dir holding the last name of `path`; `name` is undefined for the root itself, and `slash`
   * tells that the name had a trailing slash (which each call answers its own way).
   */
  parentOf(path: string): { dir: MNode; name?: string; slash: boolean } {
    const parts = path.split('/').filter((c) => c !== '')
    const name = parts.pop()
    if (name === undefined) return { dir: this.root, slash: false }
    const dir = this.resolve('/' + parts.join('/'), true)
    if (dir.kind !== 'dir') fail('ENOTDIR')
    this.need(dir, MAY_EXEC)
    return { dir, name, slash: hasTrailingSlash(path) }
  }

  /** filename_create: an existing name is EEXIST; a missing one with a trailing slash can only be a dir. */
  private createName(path: string, mkdir: boolean): { dir: MNode; name: string } {
    const { dir, name, slash } = this.parentOf(path)
    if (name === undefined || dir.entries.has(name)) return fail('EEXIST')
    if (slash && !mkdir) fail('ENOENT')
    return { dir, name }
  }

  // ---- helpers ----

  /** EACCES unless the caller has `mask` on `node`. */
  private need(node: MNode, mask: number): void {
    if (!permits(this.caller, node, mask)) fail('EACCES')
  }

  /** may_delete, after the name is known to exist: write on the dir, then the sticky rule. */
  private mayDelete(dir: MNode, victim: MNode): void {
    this.need(dir, MAY_WRITE | MAY_EXEC)
    if (stickyRefuses(this.caller, dir, victim)) fail('EPERM')
  }

  /** A new inode named `name` in `dir` (whose write permission the caller has checked). */
  private create(dir: MNode, name: string, kind: Kind, perm: number): MNode {
    const own = newOwnership(this.caller, dir, kind, perm)
    const node = this.newNode(this.nextId++, kind, own.perm, own.uid, own.gid)
    if (kind === 'dir') node.parent = dir
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
    if (creates && hasTrailingSlash(path)) {
      // open_last_lookups: O_CREAT with a trailing slash, before even looking the name up
      this.parentOf(path)
      fail('EISDIR')
    }
    const r = this.walk(path, !excl, creates)
    let node: MNode
    if ('dir' in r) {
      this.need(r.dir, MAY_WRITE | MAY_EXEC)
      node = this.create(r.dir, r.name, 'file', mode & 0o7777)
    } else {
      node = r.node
      if (excl) fail('EEXIST')
      // open(2) lets a dir be opened for reading only (its reads then fail with EISDIR)
      if (node.kind === 'dir') {
        if (flag !== 'r') fail('EISDIR')
        this.need(node, MAY_READ)
        return node
      }
      this.need(node, (flag === 'w' || flag === 'wx' || flag === 'a' ? 0 : MAY_READ) | (flag === 'r' ? 0 : MAY_WRITE))
      // Strata opens only regular files for data (documented in overlay/file.ts)
      if (node.kind !== 'file') fail('ENOTSUP')
      if (TRUNCATES.has(flag)) this.truncateNode(node, 0, this.caller)
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

  /** pwrite(2) by `by`; writing nothing changes nothing, not even past the end. */
  writeNode(node: MNode, pos: number, data: Uint8Array, by: Caller): void {
    if (data.length === 0) return
    node.perm = afterWrite(by, node)
    const end = pos + data.length
    if (end > node.data.length) {
      const grown = Buffer.alloc(end)
      node.data.copy(grown)
      node.data = grown
    }
    node.data.set(data, pos)
    node.mtime = undefined
  }

  truncateNode(node: MNode, len: number, by: Caller): void {
    node.perm = afterWrite(by, node)
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
      this.writeNode(node, flag === 'a' ? node.data.length : 0, data, this.caller)
    })
  }

  writeAt(path: string, pos: number, data: Uint8Array): Outcome {
    return this.attempt(() => this.writeNode(this.open(path, 'r+', 0), pos, data, this.caller))
  }

  /** truncate(2): EISDIR for a dir, EINVAL for other non-files, then write permission alone. */
  truncate(path: string, len: number): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, true)
      if (node.kind === 'dir') fail('EISDIR')
      if (node.kind !== 'file') fail('EINVAL')
      this.need(node, MAY_WRITE)
      this.truncateNode(node, len, this.caller)
    })
  }

  readFile(path: string): Outcome {
    return this.attempt(() => {
      const node = this.open(path, 'r', 0)
      if (node.kind === 'dir') fail('EISDIR')
      return dataValue(node.data)
    })
  }

  unlink(path: string): Outcome {
    return this.attempt(() => {
      const { dir, name, slash } = this.parentOf(path)
      if (name === undefined) return fail('EISDIR')
      const node = dir.entries.get(name) ?? fail('ENOENT')
      // do_unlinkat: a trailing slash is refused before any permission check
      if (slash) fail(node.kind === 'dir' ? 'EISDIR' : 'ENOTDIR')
      this.mayDelete(dir, node)
      if (node.kind === 'dir') fail('EISDIR')
      this.dropName(dir, name)
    })
  }

  mkdir(path: string, mode: number): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.createName(path, true)
      this.need(dir, MAY_WRITE | MAY_EXEC)
      // vfs_mkdir keeps only the permission and sticky bits of the mode asked for
      this.create(dir, name, 'dir', mode & 0o1777)
    })
  }

  rmdir(path: string): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.parentOf(path)
      if (name === undefined) return fail('EBUSY')
      const node = dir.entries.get(name) ?? fail('ENOENT')
      this.mayDelete(dir, node)
      if (node.kind !== 'dir') fail('ENOTDIR')
      if (node.entries.size > 0) fail('ENOTEMPTY')
      this.dropName(dir, name)
    })
  }

  /** mknod(2) of a fifo or an empty regular file. */
  mknod(path: string, kind: 'fifo' | 'file', mode: number): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.createName(path, false)
      this.need(dir, MAY_WRITE | MAY_EXEC)
      this.create(dir, name, kind, mode & 0o777)
    })
  }

  symlink(target: string, path: string): Outcome {
    return this.attempt(() => {
      const { dir, name } = this.createName(path, false)
      this.need(dir, MAY_WRITE | MAY_EXEC)
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

  /**
   * linkat(2) without AT_SYMLINK_FOLLOW: the old path, the new name, protected_hardlinks (others
   * may link only a plain regular file they can read and write), write on the dir, EPERM for a dir.
   */
  link(existing: string, newPath: string): Outcome {
    return this.attempt(() => {
      const node = this.resolve(existing, false)
      const { dir, name } = this.createName(newPath, false)
      const safe = node.kind === 'file' && !(node.perm & 0o4000) && (node.perm & 0o2010) !== 0o2010 && permits(this.caller, node, MAY_READ | MAY_WRITE)
      if (!safe && !owns(this.caller, node)) fail('EPERM')
      this.need(dir, MAY_WRITE | MAY_EXEC)
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
      // trailing slashes: only a dir may have one (the target's counts in an exchange only)
      if (exchange && dst!.kind !== 'dir' && d.slash) fail('ENOTDIR')
      if (src.kind !== 'dir' && (s.slash || (!exchange && d.slash))) fail('ENOTDIR')
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
      // vfs_rename: may_delete of the source, may_create or may_delete of the target, then a dir
      // that changes parent needs write on itself (its '..' changes), then emptiness
      this.mayDelete(s.dir, src)
      if (!dst) this.need(d.dir, MAY_WRITE | MAY_EXEC)
      else {
        this.mayDelete(d.dir, dst)
        if (!exchange && src.kind === 'dir' && dst.kind !== 'dir') fail('ENOTDIR')
        if (!exchange && src.kind !== 'dir' && dst.kind === 'dir') fail('EISDIR')
      }
      if (s.dir !== d.dir) {
        if (src.kind === 'dir') this.need(src, MAY_WRITE)
        if (exchange && dst!.kind === 'dir') this.need(dst!, MAY_WRITE)
      }
      if (dst && !exchange && dst.kind === 'dir' && dst.entries.size > 0) fail('ENOTEMPTY')
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

  /** chmod(2): the owner only; one outside the file's group cannot set setgid (dirs included). */
  chmod(path: string, mode: number): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, true)
      if (!owns(this.caller, node)) fail('EPERM')
      node.perm = mode & 0o7777
      if (!inGroup(this.caller, node.gid)) node.perm &= ~S_ISGID
    })
  }

  /**
   * chown(2)/lchown(2); -1 keeps a field. Others than root keep the owner and may change the group
   * of their own files to one of theirs. Every chown of a non-dir drops setuid (and setgid as a
   * write would), a mode change that only the owner may cause.
   */
  chown(path: string, uid: number, gid: number, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      const c = this.caller
      if (!isRoot(c)) {
        if (uid !== -1 && !(c.uid === node.uid && uid === node.uid)) fail('EPERM')
        if (gid !== -1 && !(c.uid === node.uid && (gid === node.gid || inGroup(c, gid)))) fail('EPERM')
      }
      const perm = afterChown(c, node)
      if (perm !== node.perm && !owns(c, node)) fail('EPERM')
      node.perm = perm
      if (uid !== -1) node.uid = uid
      if (gid !== -1) node.gid = gid
    })
  }

  /** utimes(2): explicit times need ownership (EPERM); "now" for both needs ownership or write access (EACCES). */
  utimes(path: string, atime: bigint | null, mtime: bigint | null, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      if (!owns(this.caller, node)) {
        if (atime !== null || mtime !== null) fail('EPERM')
        this.need(node, MAY_WRITE)
      }
      node.atime = atime ?? undefined
      node.mtime = mtime ?? undefined
    })
  }

  /**
   * xattr_permission: trusted.* is root's; user.* lives on regular files and dirs only, and on a
   * sticky dir only its owner writes it; then read or write permission on the inode.
   */
  private xattrAccess(node: MNode, name: string, write: boolean): void {
    if (name.startsWith('trusted.') && !isRoot(this.caller)) fail(write ? 'EPERM' : 'ENODATA')
    if (name.startsWith('user.')) {
      if (node.kind !== 'file' && node.kind !== 'dir') fail(write ? 'EPERM' : 'ENODATA')
      if (write && node.kind === 'dir' && node.perm & 0o1000 && !owns(this.caller, node)) fail('EPERM')
    }
    this.need(node, write ? MAY_WRITE : MAY_READ)
  }

  /** flags: 1 XATTR_CREATE, 2 XATTR_REPLACE. */
  setxattr(path: string, name: string, value: Buffer, flags: number, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      this.xattrAccess(node, name, true)
      const exists = node.xattrs.has(name)
      if (flags & 1 && exists) fail('EEXIST')
      if (flags & 2 && !exists) fail('ENODATA')
      node.xattrs.set(name, Buffer.from(value))
    })
  }

  removexattr(path: string, name: string, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      this.xattrAccess(node, name, true)
      if (!node.xattrs.delete(name)) fail('ENODATA')
    })
  }

  getxattr(path: string, name: string, follow: boolean): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, follow)
      this.xattrAccess(node, name, false)
      const v = node.xattrs.get(name) ?? fail('ENODATA')
      return { t: 'text', v: v.toString('hex') }
    })
  }

  listxattr(path: string, follow: boolean): Outcome {
    return this.attempt(() => {
      const names = [...this.resolve(path, follow).xattrs.keys()]
      return { t: 'names', v: names.filter((n) => isRoot(this.caller) || !n.startsWith('trusted.')).sort() }
    })
  }

  stat(path: string, follow: boolean): Outcome {
    return this.attempt(() => ({ t: 'stat', d: describe(this.resolve(path, follow)) }))
  }

  readdir(path: string): Outcome {
    return this.attempt(() => {
      const node = this.resolve(path, true)
      if (node.kind !== 'dir') fail('ENOTDIR')
      this.need(node, MAY_READ)
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

/** A name given with a slash after it ('d/'); the root alone ('/') has no name. */
const hasTrailingSlash = (path: string): boolean => /[^/]\/+$/.test(path)
