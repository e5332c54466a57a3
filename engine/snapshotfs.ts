import { constants } from 'node:fs'
import type { Creds } from './types.js'
import { fsError } from './errors.js'
import { checkCreds } from './validate.js'
import type { Timespec } from './store/records.js'
import { T, isDirType, joinPath, typeOf } from './overlay/node.js'
import type { Overlay } from './overlay/overlay.js'
import { readMergedDir } from './overlay/readdir.js'
import { createNode, link, rename, rmdir, unlink } from './overlay/dir.js'
import { chmod, chown, findxattr, getxattr, listxattr, removexattr, setattr, setxattr, utimes } from './overlay/inode.js'
import { FileHandle, openFile, type OpenFlags, type OpenOptions } from './overlay/file.js'
import { copyUpBreaksLink } from './overlay/copyup.js'
import { Dirent, Stats, fromNs } from './overlay/stats.js'
import { MAY_EXEC, MAY_READ, MAY_WRITE, checkAccess } from './overlay/permission.js'

export { Stats, Dirent, FileHandle }
export type { OpenFlags, OpenOptions }
export { RENAME_EXCHANGE, RENAME_NOREPLACE } from './overlay/dir.js'

export type TimeArg = number | Date | bigint

/** What `SnapshotFs.setattr` changes; a field left out stays as it is. */
export interface AttrChanges {
  /** Owner and group, as lchown: -1 leaves one as it is. */
  uid?: number
  gid?: number
  /** Permission bits, as chmod. */
  mode?: number
  /** Times, as lutimes: null sets now. */
  atime?: TimeArg | null
  mtime?: TimeArg | null
  /**
   * The caller's right to set these times was checked already (a FUSE mount: the kernel checks
   * it, and with its writeback cache also writes back the times it kept for a writer who may
   * write the file but not set its times). Owner and mode are always checked.
   */
  timesChecked?: boolean
}

/** seconds (number), a Date, or nanoseconds (bigint), as the timespec the store keeps. */
function toTimespec(t: TimeArg, path: string): Timespec {
  if (typeof t === 'bigint') return fromNs(t)
  if (t instanceof Date) return fromNs(BigInt(t.getTime()) * 1000000n)
  if (typeof t !== 'number' || !Number.isFinite(t)) throw fsError('EINVAL', 'utimes', path, 'time must be seconds, a Date or nanoseconds')
  return fromNs(BigInt(Math.round(t * 1e9)))
}

/** As toTimespec, with null (now) kept. */
const timeOrNow = (t: TimeArg | null, path: string): Timespec | null => (t === null ? null : toTimespec(t, path))

/** An open directory: its names as they were when it was opened, for the life of the handle. */
export class DirHandle implements AsyncIterable<Dirent> {
  private pos = 0
  constructor(readonly path: string, private readonly entries: Dirent[]) {}
  async read(): Promise<Dirent | null> {
    return this.entries[this.pos++] ?? null
  }
  /** Offset 0 again, as seekdir(0); the listing is kept (reopen to see changes). */
  rewind(): void {
    this.pos = 0
  }
  async close(): Promise<void> { this.pos = this.entries.length }
  async *[Symbol.asyncIterator](): AsyncIterator<Dirent> {
    for (let d = await this.read(); d; d = await this.read()) yield d
  }
}

/**
 * The POSIX-like view of one snapshot's merged tree, shaped after node:fs/promises. Every call
 * runs with the credentials given to `store.fs(key, { creds })` and fails with an `FsError`
 * whose `code` is the errno name and whose `path` is the path given.
 */
export class SnapshotFs {
  private opened?: Promise<Overlay>
  constructor(private readonly openOverlay: () => Promise<Overlay>, readonly creds: Creds, private readonly dev: number) {}

  /**
   * The same merged tree (the same open overlay, open files and caches) seen by another caller:
   * every call of the result checks permissions with `creds`.
   */
  withCreds(creds: Creds): SnapshotFs {
    return new SnapshotFs(() => this.ov(), checkCreds(creds, ''), this.dev)
  }

  /**
   * Whether the names of a hard link stay one inode when a copy-up happens through one of them.
   * A store upper keeps them together (like the kernel with index=on); a directory upper breaks
   * them, as the kernel without an index does. A read-only tree never copies up.
   */
  async hardLinksSurviveCopyUp(): Promise<boolean> {
    return (await this.ov()).upper?.keepsHardLinks ?? true
  }

  /**
   * Whether `path` (a symlink itself, not followed) names a lower hard link that a copy-up
   * through this name would leave: the name would get an inode of its own while its other names
   * keep the lower one. False for a name in the upper layer, whose inode stays what it is.
   */
  async splitsOnCopyUp(path: string): Promise<boolean> {
    const ov = await this.ov()
    const node = await ov.resolve(path, this.creds, 'lstat', false)
    return !node.upper && ov.upper !== null && copyUpBreaksLink(ov.upper, node.type, await ov.inodeOf(node))
  }

  /** The overlay of the snapshot, opened again if it was committed or removed since. */
  private async ov(): Promise<Overlay> {
    this.opened ??= this.openOverlay()
    this.opened.catch(() => { this.opened = undefined })
    const ov = await this.opened
    if (!ov.retired) return ov
    this.opened = undefined
    return this.ov()
  }

  private async statNode(path: string, follow: boolean, syscall: string): Promise<Stats> {
    const ov = await this.ov()
    return ov.statsOf(await ov.resolve(path, this.creds, syscall, follow), this.dev)
  }

  stat(path: string): Promise<Stats> { return this.statNode(path, true, 'stat') }
  lstat(path: string): Promise<Stats> { return this.statNode(path, false, 'lstat') }

  /**
   * `lstat` of several names in directory `dir` at once (a listing with attributes): null for a
   * name that is not there. The directory is walked to once, where an lstat per name walks the
   * whole path each time.
   */
  async lstatChildren(dir: string, names: readonly string[]): Promise<Array<Stats | null>> {
    const ov = await this.ov()
    for (const name of names) if (name === '' || name === '.' || name === '..' || name.includes('/')) throw fsError('EINVAL', 'lstat', dir, `'${name}' is not a name in a directory`)
    const nodes = await ov.resolveChildren(dir, names, this.creds, 'lstat')
    return Promise.all(nodes.map((n) => (n ? ov.statsOf(n, this.dev) : null)))
  }

  async access(path: string, mode = 0): Promise<void> {
    const node = await (await this.ov()).resolve(path, this.creds, 'access')
    if (mode & MAY_WRITE) (await this.ov()).writable('access', path)
    checkAccess(this.creds, await (await this.ov()).inodeOf(node), mode & (MAY_READ | MAY_WRITE | MAY_EXEC), 'access', path)
  }

  /** Makes every change made so far through this tree durable (fsync of a directory). */
  async sync(): Promise<void> {
    await (await this.ov()).upper?.sync()
  }

  async opendir(path: string): Promise<DirHandle> {
    const node = await (await this.ov()).resolve(path, this.creds, 'opendir')
    if (!isDirType(node.type)) throw fsError('ENOTDIR', 'opendir', path)
    checkAccess(this.creds, await (await this.ov()).inodeOf(node), MAY_READ, 'opendir', path)
    const entries = await readMergedDir(await this.ov(), node)
    return new DirHandle(path, entries.map((e) => new Dirent(e.name, e.ino, e.type, node.path)))
  }

  readdir(path: string): Promise<string[]>
  readdir(path: string, opts: { withFileTypes: true }): Promise<Dirent[]>
  readdir(path: string, opts: { withFileTypes?: false }): Promise<string[]>
  async readdir(path: string, opts: { withFileTypes?: boolean } = {}): Promise<string[] | Dirent[]> {
    const h = await this.opendir(path)
    const all: Dirent[] = []
    for await (const d of h) all.push(d)
    return opts.withFileTypes ? all : all.map((d) => d.name)
  }

  async open(path: string, flags: OpenFlags = 'r', mode = 0o666, opts: OpenOptions = {}): Promise<FileHandle> {
    return openFile(await this.ov(), this.creds, path, flags, mode, this.dev, opts)
  }

  readFile(path: string): Promise<Buffer>
  readFile(path: string, encoding: BufferEncoding | { encoding: BufferEncoding }): Promise<string>
  async readFile(path: string, encoding?: BufferEncoding | { encoding?: BufferEncoding }): Promise<Buffer | string> {
    const h = await this.open(path, 'r')
    try {
      const data = await h.readFile()
      const enc = typeof encoding === 'string' ? encoding : encoding?.encoding
      return enc ? data.toString(enc) : data
    } finally {
      await h.close()
    }
  }

  async writeFile(path: string, data: string | Uint8Array, opts: { mode?: number; flag?: OpenFlags } = {}): Promise<void> {
    const h = await this.open(path, opts.flag ?? 'w', opts.mode ?? 0o666)
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data
      await h.write(buf, 0, buf.length, 0)
    } finally {
      await h.close()
    }
  }

  async appendFile(path: string, data: string | Uint8Array): Promise<void> {
    await this.writeFile(path, data, { flag: 'a' })
  }

  /** truncate(2): EISDIR for a dir, EINVAL for other non-files, and it needs write permission only. */
  async truncate(path: string, len = 0): Promise<void> {
    const st = await this.stat(path)
    if (st.isDirectory()) throw fsError('EISDIR', 'truncate', path)
    if (!st.isFile()) throw fsError('EINVAL', 'truncate', path)
    const h = await this.open(path, constants.O_WRONLY)
    try {
      await h.truncate(len)
    } finally {
      await h.close()
    }
  }

  async mkdir(path: string, opts: number | { mode?: number; recursive?: boolean } = {}): Promise<string | undefined> {
    const o = typeof opts === 'number' ? { mode: opts } : opts
    // as vfs_mkdir: only permission and sticky bits are taken (setgid comes from the parent alone)
    const mode = ((o.mode ?? 0o777) & 0o1777) | 0o040000
    if (!o.recursive) {
      await createNode(await this.ov(), this.creds, path, mode, 'mkdir')
      return undefined
    }
    let first: string | undefined
    let cur = '/'
    for (const part of path.split('/').filter((p) => p !== '' && p !== '.')) {
      cur = joinPath(cur, part)
      try {
        await createNode(await this.ov(), this.creds, cur, mode, 'mkdir')
        first ??= cur
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') throw err
        const st = await this.stat(cur)
        if (!st.isDirectory()) throw fsError('ENOTDIR', 'mkdir', path)
      }
    }
    return first
  }

  async rmdir(path: string): Promise<void> { return rmdir(await this.ov(), this.creds, path) }
  async unlink(path: string): Promise<void> { return unlink(await this.ov(), this.creds, path) }
  async rename(from: string, to: string, flags = 0): Promise<void> { return rename(await this.ov(), this.creds, from, to, flags) }
  async link(existing: string, newPath: string): Promise<void> { return link(await this.ov(), this.creds, existing, newPath) }

  async symlink(target: string, path: string): Promise<void> {
    if (typeof target !== 'string' || target === '' || target.includes('\0')) throw fsError('EINVAL', 'symlink', path, 'invalid symlink target')
    if (Buffer.byteLength(target) >= 4096) throw fsError('ENAMETOOLONG', 'symlink', path)
    await createNode(await this.ov(), this.creds, path, 0o120777, 'symlink', { target, size: Buffer.byteLength(target) })
  }

  async readlink(path: string): Promise<string> {
    const node = await (await this.ov()).resolve(path, this.creds, 'readlink', false)
    if (node.type !== T.LNK) throw fsError('EINVAL', 'readlink', path, 'not a symbolic link')
    return (await (await this.ov()).inodeOf(node)).target ?? ''
  }

  /** mknod(2): char and block devices, fifos, sockets and regular files. */
  async mknod(path: string, mode: number, rdev = 0): Promise<void> {
    const t = typeOf(mode)
    if (![T.REG, T.CHR, T.BLK, T.FIFO, T.SOCK].includes(t as 8)) throw fsError('EINVAL', 'mknod', path, 'mknod makes files, devices, fifos and sockets')
    if ((t === T.CHR || t === T.BLK) && this.creds.uid !== 0) throw fsError('EPERM', 'mknod', path)
    await createNode(await this.ov(), this.creds, path, mode, 'mknod', { rdev: t === T.CHR || t === T.BLK ? rdev : 0 })
  }

  async chmod(path: string, mode: number): Promise<void> { return chmod(await this.ov(), this.creds, path, mode, true) }
  async chown(path: string, uid: number, gid: number): Promise<void> { return chown(await this.ov(), this.creds, path, uid, gid, true) }
  async lchown(path: string, uid: number, gid: number): Promise<void> { return chown(await this.ov(), this.creds, path, uid, gid, false) }

  /**
   * Several attribute changes of `path` itself (a symlink is not followed) in one step, as one
   * setattr(2): owner, then mode, then times, written together. Answers the attributes after.
   * `open`: a file open on `path`, through which the change is made without walking the path
   * when its inode is in the upper layer (a server that knows which open file a name is).
   */
  async setattr(path: string, change: AttrChanges, opts: { open?: FileHandle } = {}): Promise<Stats> {
    const ov = await this.ov()
    const time = (t: TimeArg | null | undefined): Timespec | null | undefined => (t === undefined ? t : timeOrNow(t, path))
    const update = { ...change, atime: time(change.atime), mtime: time(change.mtime) }
    const done = await opts.open?.setattrOpen(update, this.creds)
    return done ?? ov.statsOf(await setattr(ov, this.creds, path, update, false), this.dev)
  }

  /** Times in seconds, Dates, or bigint nanoseconds; null sets now. */
  async utimes(path: string, atime: TimeArg | null, mtime: TimeArg | null): Promise<void> {
    return utimes(await this.ov(), this.creds, path, timeOrNow(atime, path), timeOrNow(mtime, path), true)
  }
  async lutimes(path: string, atime: TimeArg | null, mtime: TimeArg | null): Promise<void> {
    return utimes(await this.ov(), this.creds, path, timeOrNow(atime, path), timeOrNow(mtime, path), false)
  }

  async getxattr(path: string, name: string, opts: { follow?: boolean } = {}): Promise<Buffer> {
    return getxattr(await this.ov(), this.creds, path, name, opts.follow ?? true)
  }
  /**
   * `getxattr` that answers undefined where it would fail with ENODATA (no such xattr, or one
   * hidden from the caller), for callers that mostly ask for names that are not there: the
   * kernel asks a FUSE server for security.capability before each write and at each chown.
   */
  async findxattr(path: string, name: string, opts: { follow?: boolean } = {}): Promise<Buffer | undefined> {
    return findxattr(await this.ov(), this.creds, path, name, opts.follow ?? true)
  }
  async listxattr(path: string, opts: { follow?: boolean } = {}): Promise<string[]> {
    return listxattr(await this.ov(), this.creds, path, opts.follow ?? true)
  }
  /** flags: 1 XATTR_CREATE, 2 XATTR_REPLACE. */
  async setxattr(path: string, name: string, value: Uint8Array | string, flags = 0, opts: { follow?: boolean } = {}): Promise<void> {
    return setxattr(await this.ov(), this.creds, path, name, typeof value === 'string' ? Buffer.from(value) : value, flags, opts.follow ?? true)
  }
  async removexattr(path: string, name: string, opts: { follow?: boolean } = {}): Promise<void> {
    return removexattr(await this.ov(), this.creds, path, name, opts.follow ?? true)
  }
}
