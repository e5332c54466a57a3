import { constants } from 'node:fs'
import type { Creds } from '../types.js'
import type { InodeRecord } from '../store/records.js'
import { fsError } from '../errors.js'
import { T, isDirType, joinPath, type OvlNode } from './node.js'
import { lookupChild } from './namei.js'
import { MAY_READ, MAY_WRITE, checkAccess, killPriv } from './permission.js'
import { copyUp } from './copyup.js'
import { findXattrValue, setattrOpen, xattrValue, type AttrUpdate } from './inode.js'
import { createNode } from './dir.js'
import { LiveInode } from './live.js'
import { Stats } from './stats.js'
import { SYMLOOP_MAX, type Overlay } from './overlay.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOFOLLOW } = constants
const ACCMODE = 3

const FLAG_STRINGS: Record<string, number> = {
  r: O_RDONLY, rs: O_RDONLY, sr: O_RDONLY, 'r+': O_RDWR, 'rs+': O_RDWR, 'sr+': O_RDWR,
  w: O_TRUNC | O_CREAT | O_WRONLY, wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL, xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR, 'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL, 'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY, ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL, xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY, sa: O_APPEND | O_CREAT | O_WRONLY,
  'a+': O_APPEND | O_CREAT | O_RDWR, 'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL, 'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR, 'sa+': O_APPEND | O_CREAT | O_RDWR,
}

export type OpenFlags = string | number

/**
 * What a write did. `setIdCleared`: the write took setuid or setgid off the file (see killPriv),
 * which anything caching its mode (a FUSE kernel) must learn before the write returns.
 */
/** How a file is opened, beyond its flags. */
export interface OpenOptions {
  /**
   * A write-only handle may read too: a kernel page cache that fills the rest of a page a write
   * partly covers reads it through the writer's handle (FUSE's writeback cache). Reading needs
   * no permission then, as the data read goes nowhere but back into the file.
   */
  pageCacheReads?: boolean
}

export interface WriteResult {
  bytesWritten: number
  buffer: Uint8Array
  setIdCleared: boolean
}

export function parseFlags(flags: OpenFlags, path: string): number {
  if (typeof flags === 'number') return flags
  const f = FLAG_STRINGS[flags]
  if (f === undefined) throw fsError('EINVAL', 'open', path, `unknown open flags '${flags}'`)
  return f
}

/**
 * An open file of a snapshot, like node's FileHandle. A directory opened read-only (as open(2)
 * allows) has no data: reading it fails with EISDIR.
 */
export class FileHandle {
  private closed = false
  private readonly live: LiveInode

  constructor(private readonly ov: Overlay, live: LiveInode | OvlNode, readonly flags: number, readonly path: string, private readonly creds: Creds, private readonly dev: number, private readonly opts: OpenOptions = {}) {
    if (live instanceof LiveInode) this.live = live
    else {
      this.dir = live
      this.live = undefined as unknown as LiveInode
    }
  }

  /** Set when the handle is on a directory. */
  private readonly dir?: OvlNode

  private check(syscall: string, write: boolean): void {
    if (this.closed) throw fsError('EBADF', syscall, this.path)
    const acc = this.flags & ACCMODE
    if (write && acc === O_RDONLY) throw fsError('EBADF', syscall, this.path)
    if (!write && acc === O_WRONLY && this.opts.pageCacheReads !== true) throw fsError('EBADF', syscall, this.path)
  }

  async read(buffer: Buffer, offset = 0, length = buffer.length - offset, position = 0): Promise<{ bytesRead: number; buffer: Buffer }> {
    this.check('read', false)
    if (this.dir) throw fsError('EISDIR', 'read', this.path)
    if (offset < 0 || length < 0 || offset + length > buffer.length) throw fsError('EINVAL', 'read', this.path, 'buffer range out of bounds')
    const bytesRead = await this.live.read(buffer, offset, length, position)
    return { bytesRead, buffer }
  }

  /**
   * A read that returns the bytes as views of the engine's own buffers instead of copying them
   * into the caller's (a server writes them out with writev). The views must not be changed.
   */
  async readSlices(length: number, position: number): Promise<Buffer[]> {
    this.check('read', false)
    if (this.dir) throw fsError('EISDIR', 'read', this.path)
    if (length < 0 || position < 0) throw fsError('EINVAL', 'read', this.path, 'negative length or position')
    return this.live.slices(length, position)
  }

  /**
   * The host descriptor that holds this file's bytes, when they live in a host file (a directory
   * layer's file) rather than in the store's chunks; undefined otherwise. A server may hand it to
   * the kernel to read the file directly (FUSE passthrough): the kernel opens the file anew from
   * it, so it stays valid only as long as this handle, and the caller must not close it.
   */
  hostDescriptor(): number | undefined {
    if (this.closed) throw fsError('EBADF', 'open', this.path)
    return this.dir ? undefined : this.live.hostDescriptor()
  }

  /**
   * `creds`: who writes, when not the opener (a handle passed to another process, or a FUSE
   * request): a write by others than root drops set-id bits, judged by the writer's credentials.
   */
  async write(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position?: number, creds: Creds = this.creds): Promise<WriteResult> {
    this.check('write', true)
    if (offset < 0 || length < 0 || offset + length > buffer.length) throw fsError('EINVAL', 'write', this.path, 'buffer range out of bounds')
    const setIdCleared = await this.ov.env.lock.run(async () => {
      // The end of the file is read under the lock, so concurrent appends never overlap.
      const rec = await this.live.current()
      const pos = this.flags & O_APPEND || position === undefined ? rec.size : position
      const mode = creds.uid !== 0 && rec.mode & 0o6000 ? killPriv(creds, rec) : undefined
      await this.live.write(buffer.subarray(offset, offset + length), pos, mode)
      return length > 0 && mode !== undefined && mode !== rec.mode
    })
    return { bytesWritten: length, buffer, setIdCleared }
  }

  /**
   * Attribute changes made through the open inode, with no walk of a path, when it is in the
   * upper layer and still has a name: answers the attributes after, or undefined when the
   * change must go by path (a copy-up first, or an unlinked file). Used by `SnapshotFs.setattr`.
   */
  async setattrOpen(change: AttrUpdate, creds: Creds): Promise<Stats | undefined> {
    if (this.closed || this.dir || this.ov.retired) return undefined
    const rec = await setattrOpen(this.ov, creds, this.live, change)
    return rec && new Stats(this.dev, this.live.ino, rec, rec.nlink)
  }

  /**
   * fgetxattr(2): read from the open inode, with no walk of its path. `creds`: who asks, when
   * not the opener (a FUSE request on the node).
   */
  async getxattr(name: string, creds: Creds = this.creds): Promise<Buffer> {
    return xattrValue(creds, await this.record('getxattr'), name, this.path)
  }

  /** `getxattr` that answers undefined where it would fail with ENODATA (see SnapshotFs.findxattr). */
  async findxattr(name: string, creds: Creds = this.creds): Promise<Buffer | undefined> {
    return findXattrValue(creds, await this.record('getxattr'), name, this.path)
  }

  /** The inode as it is now, unflushed changes included. */
  private async record(syscall: string): Promise<InodeRecord> {
    if (this.closed) throw fsError('EBADF', syscall, this.path)
    return this.dir ? this.ov.inodeOf(this.dir) : this.live.current()
  }

  async truncate(len = 0, creds: Creds = this.creds): Promise<void> {
    this.check('ftruncate', true)
    if (len < 0) throw fsError('EINVAL', 'ftruncate', this.path)
    await this.ov.env.lock.run(async () => {
      const rec = await this.live.current()
      await this.live.truncate(len, creds.uid !== 0 && rec.mode & 0o6000 ? killPriv(creds, rec) : undefined)
    })
  }

  /**
   * Hands what was written through this handle to the store (or the upper dir), without waiting
   * for the disk: a FUSE mount does it at every close(2), so that data closed is not lost with
   * the daemon. `sync` also makes it durable.
   */
  async flush(): Promise<void> {
    if (this.closed) throw fsError('EBADF', 'flush', this.path)
    // a reader has nothing to hand over, and need not wait for the store's lock behind writers
    if (this.dir || (this.flags & ACCMODE) === O_RDONLY) return
    await this.ov.env.lock.run(() => this.live.flush())
  }

  async sync(): Promise<void> {
    if (this.closed) throw fsError('EBADF', 'fsync', this.path)
    if (this.dir) return
    await this.ov.env.lock.run(() => this.live.flush(true))
  }
  datasync(): Promise<void> {
    return this.sync()
  }

  async stat(): Promise<Stats> {
    if (this.closed) throw fsError('EBADF', 'fstat', this.path)
    if (this.dir) return this.ov.statsOf(this.dir, this.dev)
    const rec = await this.live.current()
    return new Stats(this.dev, this.live.ino, rec, rec.nlink)
  }

  async readFile(): Promise<Buffer> {
    if (this.dir) throw fsError('EISDIR', 'read', this.path)
    const size = (await this.live.current()).size
    const buf = Buffer.alloc(size)
    await this.read(buf, 0, size, 0)
    return buf
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.dir) return
    await this.ov.env.lock.run(async () => {
      await this.live.flush()
      if (--this.live.opens === 0) {
        this.ov.live.delete(this.live.ino)
        await this.live.release()
      }
    })
  }
}

/** open(2) on the merged view: creates, copies up for writing, truncates; checks permissions. */
export async function openFile(ov: Overlay, creds: Creds, path: string, flagsIn: OpenFlags, mode: number, dev: number, opts: OpenOptions = {}): Promise<FileHandle> {
  const flags = parseFlags(flagsIn, path)
  const acc = flags & ACCMODE
  const wantsWrite = acc !== O_RDONLY || (flags & O_TRUNC) !== 0
  let node: OvlNode | undefined
  let created = false
  if (flags & O_CREAT) {
    let { dir, name, slash } = await ov.resolveParent(path, creds, 'open')
    // O_CREAT of 'name/' is refused before the name is even looked up
    if (slash) throw fsError('EISDIR', 'open', path)
    let found = (await lookupChild(ov.ctx, dir, name)).node
    if (found && flags & O_EXCL) throw fsError('EEXIST', 'open', path)
    // Through a final symlink, as the kernel: a dangling one creates the file it names.
    let createAt = path
    for (let links = 0; found && found.type === T.LNK && !(flags & O_NOFOLLOW);) {
      if (++links > SYMLOOP_MAX) throw fsError('ELOOP', 'open', path)
      const target = (await ov.inodeOf(found)).target ?? ''
      createAt = target.startsWith('/') ? target : joinPath(dir.path, target)
      const last = createAt.split('/').filter((c) => c !== '').pop()
      if (last === undefined || last === '.' || last === '..') {
        found = await ov.resolve(createAt, creds, 'open', true)
        break
      }
      ;({ dir, name } = await ov.resolveParent(createAt, creds, 'open'))
      found = (await lookupChild(ov.ctx, dir, name)).node
    }
    if (!found) {
      try {
        node = await createNode(ov, creds, createAt, (mode & 0o7777) | 0o100000, 'open')
        created = true
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST' || flags & O_EXCL) throw err
        node = await ov.resolve(path, creds, 'open', true)
      }
    } else node = found
  } else {
    node = await ov.resolve(path, creds, 'open', !(flags & O_NOFOLLOW))
  }
  if (node.type === T.LNK) throw fsError('ELOOP', 'open', path)
  if (isDirType(node.type)) {
    // open(2) lets a directory be opened for reading only; its entries are read with readdir
    if (wantsWrite || flags & O_CREAT) throw fsError('EISDIR', 'open', path)
    checkAccess(creds, await ov.inodeOf(node), MAY_READ, 'open', path)
    return new FileHandle(ov, node, flags, path, creds, dev)
  }
  if (flags & O_DIRECTORY) throw fsError('ENOTDIR', 'open', path)
  if (!created) {
    const rec = await ov.inodeOf(node)
    checkAccess(creds, rec, (acc !== O_WRONLY ? MAY_READ : 0) | (wantsWrite ? MAY_WRITE : 0), 'open', path)
  }
  if (wantsWrite) ov.writable('open', path)
  if (node.type !== T.REG) throw fsError('ENOTSUP', 'open', path, 'only regular files can be opened for data')
  return ov.env.lock.run(async () => {
    if (wantsWrite) await copyUp(ov, node!, 'open')
    let live = ov.live.get(node!.ino)
    if (!live) {
      // A hard link opened through a lower name may have its inode up already (through another
      // name): its changes then belong to that upper record, or they would never be flushed.
      const inUpper = node!.upper || (ov.upper !== null && (await ov.upper.inode(node!.ino)) !== undefined)
      live = new LiveInode(ov, node!.ino, await ov.inodeOf(node!), inUpper, node!.path)
      await live.openHostData()
      ov.live.set(node!.ino, live)
    }
    live.opens++
    if (flags & O_TRUNC && !created) {
      // even an empty file gets new times, and loses setuid to a truncate by others than root
      const rec = await live.current()
      await live.truncate(0, creds.uid !== 0 && rec.mode & 0o6000 ? killPriv(creds, rec) : undefined)
      await live.flush()
    }
    return new FileHandle(ov, live, flags, path, creds, dev, opts)
  })
}
