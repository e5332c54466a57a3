import { constants } from 'node:os'
import { constants as fsConstants, existsSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import type { FileHandle, OpenOptions, SnapshotFs, Stats, Creds } from '../engine/index.js'
import {
  BodyReader, FATTR, FOPEN, FSYNC_FDATASYNC, GETATTR_FH, IN_HEADER_SIZE, INIT, KERNEL_MINOR, OP,
  attrOut, entryOut, initOut, notifyInvalInode, openOut, packDirents, readHeader, readInit, reply, replyParts, statfsOut, writeOut, xattrSizeOut,
  type Attr, type DirEntryOut, type RequestHeader,
} from './kernel.js'
import { NodeTable } from './nodes.js'
import { callerCreds } from './creds.js'
import type { CachePolicy } from './mount.js'

const ERRNO = constants.errno as Record<string, number>
const { O_ACCMODE, O_APPEND, O_TRUNC, O_CREAT, O_EXCL, O_WRONLY } = { O_ACCMODE: 3, ...fsConstants }
const OPEN_FLAGS = O_ACCMODE | O_APPEND | O_TRUNC
const CREATE_FLAGS = OPEN_FLAGS | O_CREAT | O_EXCL
/** Largest request the session negotiates: 256 pages, so sequential reads come in 1 MiB pieces. */
export const MAX_WRITE = 1 << 20
const MAX_PAGES = 256
/**
 * Without SELinux, a missing label reads as "not supported" rather than "no data". `ls -l` asks
 * for it on every file and, told ENOTSUP once, stops asking for the whole mount: the kernel
 * caches nothing of security xattrs, so each ask would be a round trip (20,000 for 20,000 files).
 */
const SELINUX_XATTR = 'security.selinux'
const SELINUX_ACTIVE = existsSync('/sys/fs/selinux/enforce')
/** STRATA_FUSE_TRACE=1 prints every request on stderr (the daemon's log). */
const TRACE = process.env.STRATA_FUSE_TRACE === '1'
/** DT_DIR, for the '.' and '..' entries of a listing. */
const DT_DIR = 4

export interface OpsOptions {
  cache: CachePolicy
  statfsPath: string
  /** The names of a lower hard link get a nodeid each, as a copy-up splits them (see NodeTable). */
  nodeidPerName: boolean
}

/** An error the kernel gets as an errno: the engine's FsError codes, anything else as EIO. */
class Errno extends Error {
  constructor(readonly errno: number) { super(`errno ${errno}`) }
}
const fail = (code: string): Errno => new Errno(ERRNO[code] ?? ERRNO.EIO!)

function errnoOf(err: unknown): number {
  if (err instanceof Errno) return err.errno
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && ERRNO[code] !== undefined) {
    // damaged or missing data: the reader gets EIO alone, the log says which snapshot, path and chunk
    if (code === 'EIO') process.stderr.write(`strata fuse: ${(err as Error).message}\n`)
    return ERRNO[code]!
  }
  process.stderr.write(`strata fuse: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  return ERRNO.EIO!
}

function toAttr(st: Stats): Attr {
  return {
    ino: st.ino, size: st.size, blocks: st.blocks, atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
    mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: st.rdev, blksize: st.blksize,
  }
}

/** The time fields of a SETATTR (the kernel's write-back of a writer's times included). */
const TIME_FIELDS = FATTR.ATIME | FATTR.MTIME | FATTR.CTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW

/** Listings kept for READDIRs without OPENDIR: the kernel caches what it read, so this only spans one directory's several READDIRs. */
const LISTINGS_KEPT = 64

/** A reply already laid out in pieces, header first (READ: the header, then views of the data). */
class Framed {
  constructor(readonly parts: Buffer[]) {}
}

/** Where replies go: small ones are written at once, READ data on libuv's pool (FuseChannel). */
export interface ReplySink {
  send(msg: Buffer): void
  sendOnPool(parts: Buffer[]): void
}

interface OpenDir {
  path: string
  nodeid: number
  entries: DirEntryOut[]
}

/**
 * Answers FUSE requests with the engine: each request becomes the SnapshotFs call of the same
 * name, run with the caller's credentials. No overlay rule lives here; this module only
 * translates between inode-numbered requests and the engine's paths.
 */
export class FuseOps {
  readonly nodes: NodeTable
  private readonly files = new Map<number, FileHandle>()
  /** The nodeid each open file was opened through: an unlinked file is reached by its handles alone. */
  private readonly fileNode = new Map<number, number>()
  private readonly dirs = new Map<number, OpenDir>()
  private nextFh = 1
  /**
   * Trees that never change answer OPENDIR with ENOSYS, which the kernel takes as "no opendir
   * here": it opens directories itself, keeping their listings cached (as FOPEN_CACHE_DIR does)
   * and sending neither OPENDIR nor RELEASEDIR again. A warm `ls -lR` then makes no round trip.
   * READDIR comes with no handle, and the listing of the directory is kept by its nodeid.
   */
  private noOpendir = false
  /** The kernel agreed to keep written data in its page cache (CachePolicy.writeback). */
  private writeback = false
  private readonly listings = new Map<number, OpenDir>()
  private readonly callers = new Map<string, SnapshotFs>()

  private readonly send: (msg: Buffer) => void

  constructor(private readonly root: SnapshotFs, private readonly opts: OpsOptions, private readonly replies: ReplySink) {
    this.send = replies.send
    this.nodes = new NodeTable(opts.nodeidPerName)
  }

  /** One request from the device; `recycle` hands its buffer back once nothing refers to it. */
  handle(buf: Buffer, length: number, recycle: () => void): void {
    const h = readHeader(buf)
    if (TRACE) process.stderr.write(`fuse: ${performance.now().toFixed(3)} op ${h.opcode} node ${h.nodeid} uid ${h.uid} pid ${h.pid}\n`)
    const body = buf.subarray(IN_HEADER_SIZE, length)
    if (h.opcode === OP.FORGET) {
      this.nodes.forget(h.nodeid, new BodyReader(body).u64())
      recycle()
      return
    }
    if (h.opcode === OP.BATCH_FORGET) {
      const r = new BodyReader(body)
      const count = r.u32()
      r.skip(4)
      for (let i = 0; i < count; i++) this.nodes.forget(r.u64(), r.u64())
      recycle()
      return
    }
    // INTERRUPT: every request here finishes quickly on its own and is answered then
    if (h.opcode === OP.INTERRUPT) { recycle(); return }
    this.dispatch(h, body).then(
      (out) => {
        if (!(out instanceof Framed)) return this.send(reply(h.unique, 0, out))
        this.replies.sendOnPool(out.parts)
      },
      (err: unknown) => this.send(reply(h.unique, errnoOf(err))),
    ).finally(() => {
      // a WRITE's payload may be kept by the engine's buffers: that buffer is never reused
      if (h.opcode !== OP.WRITE) recycle()
    })
  }

  /** Closes what the kernel left open when the session ended (an unmount aborts pending releases). */
  async closeAll(): Promise<void> {
    const files = [...this.files.values()]
    this.files.clear()
    this.fileNode.clear()
    this.dirs.clear()
    for (const f of files) await f.close().catch(() => {})
  }

  private async fsFor(h: RequestHeader): Promise<SnapshotFs> {
    const creds: Creds = await callerCreds(h.uid, h.gid, h.pid)
    const key = `${creds.uid}:${creds.gid}:${(creds.groups ?? []).join(',')}:${creds.pathWalked === true}`
    let fs = this.callers.get(key)
    if (!fs) {
      if (this.callers.size > 256) this.callers.clear()
      fs = this.root.withCreds(creds)
      this.callers.set(key, fs)
    }
    return fs
  }

  /**
   * An inode changed through `nodeid`: other nodeids of the same inode (the split names of a
   * lower hard link under a directory upper, see NodeTable) would go on showing cached
   * attributes and data.
   * The notices go out after the reply, never while the kernel waits on this request.
   */
  private changed(nodeid: number | undefined): void {
    if (nodeid === undefined) return
    for (const id of this.nodes.siblings(nodeid)) setImmediate(() => this.send(notifyInvalInode(id)))
  }

  /**
   * A write took setuid/setgid off the file of `nodeid`. The kernel must never run the file with
   * a bit the write removed, yet after a WRITE reply it refreshes only size and times: the mode
   * it holds stays cached for the attribute timeout, and exec trusts it. FUSE_HANDLE_KILLPRIV_V2
   * does not change that (measured on Linux 6.18: the kernel flags the write
   * FUSE_WRITE_KILL_SUIDGID, the server clears the bits, and the kernel still execs with the
   * cached setuid mode), and leaving killpriv to the kernel (no HANDLE_KILLPRIV) would have it
   * send, for a writer who does not own the file, a SETATTR of the mode that the engine refuses as
   * a chmod by a non-owner. So the kernel is told to drop the node's attributes (not its
   * data: the write holds its pages locked) before the reply goes out; its next permission
   * check or stat asks again. SETATTR replies carry the new mode themselves, and an open with
   * O_TRUNC makes the kernel drop all attributes.
   */
  private modeDropped(nodeid: number): void {
    for (const id of [nodeid, ...this.nodes.siblings(nodeid)]) this.send(notifyInvalInode(id, true))
  }

  /**
   * Whether the table must give a name a node of its own: a lower hard link that a copy-up
   * through it would split (see NodeTable). Only a non-dir with other names can part from them.
   */
  private async splits(fs: SnapshotFs, path: string, st: Stats): Promise<boolean> {
    if (!this.nodes.splits || st.nlink <= 1 || st.isDirectory()) return false
    // in doubt, a node of its own: a shared one would show one name's changes through the others
    return fs.splitsOnCopyUp(path).catch(() => true)
  }

  /**
   * A change through a split node may have copied its name up, giving it a new inode: the node
   * (with the files open on it) stands for that inode from now on, before `changed` asks for
   * the node's siblings.
   */
  private async refresh(nodeid: number): Promise<void> {
    const path = this.nodes.isSplit(nodeid) ? this.nodes.path(nodeid) : null
    if (path === null) return
    const st = await this.root.lstat(path).catch(() => null)
    if (st) this.nodes.refresh(nodeid, st.ino, await this.splits(this.root, path, st))
  }

  private pathOf(nodeid: number): string {
    const p = this.nodes.path(nodeid)
    if (p === null) throw fail('ENOENT')
    return p
  }

  private childOf(parent: number, name: string): string {
    const p = this.nodes.childPath(parent, name)
    if (p === null) throw fail('ENOENT')
    return p
  }

  /** Any open file of a node, for requests on a node whose names are all gone. */
  private openFileOf(nodeid: number): FileHandle | undefined {
    for (const [fh, node] of this.fileNode) if (node === nodeid) return this.files.get(fh)
    return undefined
  }

  private opened(nodeid: number, file: FileHandle): number {
    const fh = this.nextFh++
    this.files.set(fh, file)
    this.fileNode.set(fh, nodeid)
    return fh
  }

  /**
   * The open flags the engine gets. With the writeback cache the kernel places every write
   * itself, appends included (the WRITE carries the offset), so O_APPEND must not move it again.
   */
  private openFlags(flags: number, kept: number): number {
    return flags & kept & (this.writeback ? ~O_APPEND : ~0)
  }

  /** With the writeback cache the kernel reads through write-only handles too (see OpenOptions). */
  private openOptions(flags: number): OpenOptions {
    return this.writeback && (flags & O_ACCMODE) === O_WRONLY ? { pageCacheReads: true } : {}
  }

  private file(fh: number): FileHandle {
    const f = this.files.get(fh)
    if (!f) throw fail('EBADF')
    return f
  }

  /** The lookup reply for a name just resolved or made; the kernel now holds one lookup of it. */
  private async entry(fs: SnapshotFs, parent: number, name: string, path: string, st: Stats): Promise<Buffer> {
    const nodeid = this.nodes.remember(parent, name, st.ino, await this.splits(fs, path, st))
    return entryOut(nodeid, toAttr(st), this.opts.cache.entryTimeout, this.opts.cache.attrTimeout)
  }

  private async dispatch(h: RequestHeader, body: Buffer): Promise<Buffer | Buffer[] | Framed | undefined> {
    const r = new BodyReader(body)
    const c = this.opts.cache
    switch (h.opcode) {
      case OP.INIT: return this.init(body)
      case OP.DESTROY: return undefined
      case OP.LOOKUP: {
        const name = r.cstring()
        const path = this.childOf(h.nodeid, name)
        const fs = await this.fsFor(h)
        try {
          return await this.entry(fs, h.nodeid, name, path, await fs.lstat(path))
        } catch (err) {
          // a missing name is worth remembering too: nodeid 0 is a negative entry
          if ((err as { code?: string }).code === 'ENOENT' && c.entryTimeout > 0) return entryOut(0, null, c.entryTimeout, 0)
          throw err
        }
      }
      case OP.GETATTR: {
        const flags = r.u32()
        r.skip(4)
        const fh = r.u64()
        const path = this.nodes.path(h.nodeid)
        const file = flags & GETATTR_FH ? this.files.get(fh) : path === null ? this.openFileOf(h.nodeid) : undefined
        if (!file && path === null) throw fail('ENOENT')
        const st = file ? await file.stat() : await (await this.fsFor(h)).lstat(path!)
        return attrOut(toAttr(st), c.attrTimeout)
      }
      case OP.SETATTR: return this.setattr(h, r)
      case OP.READLINK: return Buffer.from(await (await this.fsFor(h)).readlink(this.pathOf(h.nodeid)))
      case OP.SYMLINK: {
        const name = r.cstring()
        const target = r.cstring()
        const fs = await this.fsFor(h)
        const path = this.childOf(h.nodeid, name)
        await fs.symlink(target, path)
        return this.entry(fs, h.nodeid, name, path, await fs.lstat(path))
      }
      case OP.MKNOD: {
        const mode = r.u32()
        const rdev = r.u32()
        r.skip(8)
        const name = r.cstring()
        const fs = await this.fsFor(h)
        const path = this.childOf(h.nodeid, name)
        await fs.mknod(path, mode, rdev)
        return this.entry(fs, h.nodeid, name, path, await fs.lstat(path))
      }
      case OP.MKDIR: {
        const mode = r.u32()
        r.skip(4)
        const name = r.cstring()
        const fs = await this.fsFor(h)
        const path = this.childOf(h.nodeid, name)
        await fs.mkdir(path, { mode })
        return this.entry(fs, h.nodeid, name, path, await fs.lstat(path))
      }
      case OP.UNLINK:
      case OP.RMDIR: {
        const name = r.cstring()
        const fs = await this.fsFor(h)
        const path = this.childOf(h.nodeid, name)
        await (h.opcode === OP.UNLINK ? fs.unlink(path) : fs.rmdir(path))
        this.changed(this.nodes.nodeidOf(h.nodeid, name))
        this.nodes.removed(h.nodeid, name)
        return undefined
      }
      case OP.RENAME:
      case OP.RENAME2: {
        const newParent = r.u64()
        const flags = h.opcode === OP.RENAME2 ? r.u32() : 0
        if (h.opcode === OP.RENAME2) r.skip(4)
        const name = r.cstring()
        const newName = r.cstring()
        await (await this.fsFor(h)).rename(this.childOf(h.nodeid, name), this.childOf(newParent, newName), flags)
        this.changed(this.nodes.nodeidOf(newParent, newName))
        this.nodes.renamed(h.nodeid, name, newParent, newName, (flags & 2) !== 0)
        return undefined
      }
      case OP.LINK: {
        const oldNode = r.u64()
        const name = r.cstring()
        const fs = await this.fsFor(h)
        const path = this.childOf(h.nodeid, name)
        await fs.link(this.pathOf(oldNode), path)
        await this.refresh(oldNode)
        this.changed(oldNode)
        return this.entry(fs, h.nodeid, name, path, await fs.lstat(path))
      }
      case OP.OPEN: {
        const flags = r.u32()
        const file = await (await this.fsFor(h)).open(this.pathOf(h.nodeid), this.openFlags(flags, OPEN_FLAGS), 0, this.openOptions(flags))
        if (flags & (O_ACCMODE | O_TRUNC)) await this.refresh(h.nodeid)
        if (flags & O_TRUNC) this.changed(h.nodeid)
        return openOut(this.opened(h.nodeid, file), c.keepCache ? FOPEN.KEEP_CACHE : 0)
      }
      case OP.CREATE: {
        const flags = r.u32()
        const mode = r.u32()
        r.skip(8)
        const name = r.cstring()
        const path = this.childOf(h.nodeid, name)
        const fs = await this.fsFor(h)
        const file = await fs.open(path, this.openFlags(flags, CREATE_FLAGS) | O_CREAT, mode, this.openOptions(flags))
        const st = await file.stat()
        const nodeid = this.nodes.remember(h.nodeid, name, st.ino, await this.splits(fs, path, st))
        return [entryOut(nodeid, toAttr(st), c.entryTimeout, c.attrTimeout), openOut(this.opened(nodeid, file), c.keepCache ? FOPEN.KEEP_CACHE : 0)]
      }
      case OP.READ: return this.read(h, r)
      case OP.WRITE: {
        const fh = r.u64()
        const offset = r.u64()
        const size = r.u32()
        r.skip(20)
        const data = r.bytes(size)
        const { bytesWritten, setIdCleared } = await this.file(fh).write(data, 0, size, offset, await callerCreds(h.uid, h.gid, h.pid))
        if (setIdCleared) this.modeDropped(h.nodeid)
        this.changed(h.nodeid)
        return writeOut(bytesWritten)
      }
      case OP.STATFS: {
        const s = await statfs(this.opts.statfsPath)
        return statfsOut({ blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize })
      }
      case OP.FLUSH: {
        // close(2): what was written goes to the store before close returns (RELEASE comes later, unawaited)
        await this.files.get(r.u64())?.flush()
        return undefined
      }
      case OP.RELEASE: {
        const fh = r.u64()
        const file = this.files.get(fh)
        this.files.delete(fh)
        this.fileNode.delete(fh)
        await file?.close()
        return undefined
      }
      case OP.FSYNC: {
        const fh = r.u64()
        const flags = r.u32()
        const file = this.file(fh)
        await (flags & FSYNC_FDATASYNC ? file.datasync() : file.sync())
        return undefined
      }
      case OP.SETXATTR: {
        const size = r.u32()
        const flags = r.u32()
        const name = r.cstring()
        const value = Buffer.from(r.bytes(size))
        await (await this.fsFor(h)).setxattr(this.pathOf(h.nodeid), name, value, flags, { follow: false })
        await this.refresh(h.nodeid)
        this.changed(h.nodeid)
        return undefined
      }
      case OP.GETXATTR: {
        const size = r.u32()
        r.skip(4)
        const name = r.cstring()
        try {
          return sized(await (await this.fsFor(h)).getxattr(this.pathOf(h.nodeid), name, { follow: false }), size)
        } catch (err) {
          if (name === SELINUX_XATTR && !SELINUX_ACTIVE && (err as { code?: string }).code === 'ENODATA') throw fail('ENOTSUP')
          throw err
        }
      }
      case OP.LISTXATTR: {
        const size = r.u32()
        const names = await (await this.fsFor(h)).listxattr(this.pathOf(h.nodeid), { follow: false })
        return sized(Buffer.from(names.map((n) => `${n}\0`).join('')), size)
      }
      case OP.REMOVEXATTR: {
        const name = r.cstring()
        await (await this.fsFor(h)).removexattr(this.pathOf(h.nodeid), name, { follow: false })
        await this.refresh(h.nodeid)
        this.changed(h.nodeid)
        return undefined
      }
      case OP.ACCESS: {
        const mask = r.u32()
        await (await this.fsFor(h)).access(this.pathOf(h.nodeid), mask)
        return undefined
      }
      case OP.OPENDIR: return this.opendir(h)
      case OP.READDIR:
      case OP.READDIRPLUS: return this.readdir(h, r, h.opcode === OP.READDIRPLUS)
      case OP.RELEASEDIR: {
        this.dirs.delete(r.u64())
        return undefined
      }
      case OP.FSYNCDIR: {
        await (await this.fsFor(h)).sync()
        return undefined
      }
      default:
        throw fail('ENOSYS')
    }
  }

  private init(body: Buffer): Buffer {
    const k = readInit(body)
    if (k.major !== 7) throw fail('EPROTO')
    // HANDLE_KILLPRIV_V2: the engine drops set-id bits on write, truncate and chown as the
    // kernel would (by the caller's credentials), and the kernel, trusting that, stops asking
    // for security.capability before every write(2): one round trip per write fewer
    const wanted = INIT.ASYNC_READ | INIT.ATOMIC_O_TRUNC | INIT.BIG_WRITES | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO |
      INIT.PARALLEL_DIROPS | INIT.HANDLE_KILLPRIV | INIT.HANDLE_KILLPRIV_V2 | INIT.MAX_PAGES | INIT.POSIX_ACL |
      (this.opts.cache.keepCache ? INIT.CACHE_SYMLINKS : 0) | (this.opts.cache.cacheDir ? INIT.NO_OPENDIR_SUPPORT : 0) |
      (this.opts.cache.writeback ? INIT.WRITEBACK_CACHE : 0)
    this.noOpendir = (k.flags & wanted & INIT.NO_OPENDIR_SUPPORT) !== 0
    this.writeback = (k.flags & wanted & INIT.WRITEBACK_CACHE) !== 0
    return initOut({
      minor: Math.min(k.minor, KERNEL_MINOR),
      maxReadahead: Math.min(k.maxReadahead, MAX_WRITE),
      flags: k.flags & wanted,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
    })
  }

  private async setattr(h: RequestHeader, r: BodyReader): Promise<Buffer> {
    const valid = r.u32()
    r.skip(4)
    const fh = r.u64()
    const size = r.u64()
    r.skip(8)
    const atime = r.i64()
    const mtime = r.i64()
    r.skip(8)
    const atimensec = r.u32()
    const mtimensec = r.u32()
    r.skip(4)
    const mode = r.u32()
    r.skip(4)
    const uid = r.u32()
    const gid = r.u32()
    const fs = await this.fsFor(h)
    const path = this.nodes.path(h.nodeid)
    const file = valid & FATTR.FH ? this.files.get(fh) : path === null ? this.openFileOf(h.nodeid) : undefined
    // a file with no name left takes a truncate through its handle; the times the kernel writes
    // back for it at close are dropped with it (no path reaches it, and it goes at the last close)
    if (path === null && !(file && (valid & ~(FATTR.FH | FATTR.SIZE | TIME_FIELDS)) === 0)) throw fail('ENOENT')
    if (valid & (FATTR.UID | FATTR.GID)) {
      const st = await fs.lstat(path!)
      await fs.lchown(path!, valid & FATTR.UID ? uid : st.uid, valid & FATTR.GID ? gid : st.gid)
    }
    if (valid & FATTR.MODE) await fs.chmod(path!, mode & 0o7777)
    if (valid & FATTR.SIZE) {
      if (file) await file.truncate(size, await callerCreds(h.uid, h.gid, h.pid))
      else await fs.truncate(path!, size)
    }
    if (path !== null && valid & (FATTR.ATIME | FATTR.MTIME)) {
      const st = await fs.lstat(path)
      const at = valid & FATTR.ATIME_NOW ? null : valid & FATTR.ATIME ? BigInt(atime) * 1_000_000_000n + BigInt(atimensec) : st.atimeNs
      const mt = valid & FATTR.MTIME_NOW ? null : valid & FATTR.MTIME ? BigInt(mtime) * 1_000_000_000n + BigInt(mtimensec) : st.mtimeNs
      // as the mount itself: the kernel has checked the caller's right to set these times
      // (default_permissions), and with the writeback cache it also sends the times it kept
      // for a writer, who may write but not set times on a file it does not own
      await this.root.lutimes(path, at, mt)
    }
    const st = path === null ? await file!.stat() : await fs.lstat(path)
    await this.refresh(h.nodeid)
    this.changed(h.nodeid)
    return attrOut(toAttr(st), this.opts.cache.attrTimeout)
  }

  private async read(h: RequestHeader, r: BodyReader): Promise<Framed> {
    const fh = r.u64()
    const offset = r.u64()
    const size = r.u32()
    const file = this.file(fh)
    // the data goes out as the engine holds it (views of its chunks), behind the header, in one
    // writev(2): no copy of it is made in this process
    return new Framed(replyParts(h.unique, await file.readSlices(Math.min(size, MAX_WRITE), offset)))
  }

  private async opendir(h: RequestHeader): Promise<Buffer> {
    if (this.noOpendir) throw fail('ENOSYS')
    const fh = this.nextFh++
    this.dirs.set(fh, await this.listing(h))
    return openOut(fh, this.opts.cache.cacheDir ? FOPEN.CACHE_DIR | FOPEN.KEEP_CACHE : 0)
  }

  /** The entries of a directory, '.' and '..' first, as READDIR hands them out by offset. */
  private async listing(h: RequestHeader): Promise<OpenDir> {
    const path = this.pathOf(h.nodeid)
    const fs = await this.fsFor(h)
    const listing = await fs.readdir(path, { withFileTypes: true })
    // nodeids are not always inode numbers: '.' and '..' carry the inodes' own
    const self = (await fs.lstat(path)).ino
    const parentPath = this.nodes.path(this.nodes.parentOf(h.nodeid))
    const parent = path === '/' || parentPath === null ? self : (await this.root.lstat(parentPath)).ino
    const entries: DirEntryOut[] = [
      { name: '.', ino: self, type: DT_DIR, off: 1 },
      { name: '..', ino: parent, type: DT_DIR, off: 2 },
      ...listing.map((d, i) => ({ name: d.name, ino: d.ino, type: d.type, off: i + 3 })),
    ]
    return { path, nodeid: h.nodeid, entries }
  }

  /** Without OPENDIR (an unchanging tree): the directory's listing, made at its first READDIR and kept while the kernel holds its node. */
  private async listingByNode(h: RequestHeader, offset: number): Promise<OpenDir> {
    let dir = this.listings.get(h.nodeid)
    if (!dir || offset === 0) {
      dir = await this.listing(h)
      if (this.listings.size >= LISTINGS_KEPT) this.listings.delete(this.listings.keys().next().value!)
      this.listings.set(h.nodeid, dir)
    }
    return dir
  }

  private async readdir(h: RequestHeader, r: BodyReader, plus: boolean): Promise<Buffer> {
    const fh = r.u64()
    const offset = r.u64()
    const size = r.u32()
    const dir = this.noOpendir && fh === 0 ? await this.listingByNode(h, Number(offset)) : this.dirs.get(fh)
    if (!dir) throw fail('EBADF')
    const c = this.opts.cache
    const rest = dir.entries.slice(offset)
    if (!plus) return packDirents(rest, size, false, 0, 0).buf
    // stat only what fits: every entry sent with attributes is a lookup the kernel will forget
    const fits = packDirents(rest, size, true, 0, 0).count
    const fs = await this.fsFor(h)
    const chosen = rest.slice(0, fits)
    const withAttrs: DirEntryOut[] = []
    for (const e of chosen) {
      if (e.name === '.' || e.name === '..') { withAttrs.push({ ...e, nodeid: 0, attr: null }); continue }
      const path = dir.path === '/' ? `/${e.name}` : `${dir.path}/${e.name}`
      const st = await fs.lstat(path).catch(() => null)
      const split = st !== null && (await this.splits(fs, path, st))
      withAttrs.push(st ? { ...e, nodeid: this.nodes.remember(dir.nodeid, e.name, st.ino, split), attr: toAttr(st) } : { ...e, nodeid: 0, attr: null })
    }
    const packed = packDirents(withAttrs, size, true, c.entryTimeout, c.attrTimeout)
    // everything chosen fits, so every lookup counted above reaches the kernel
    if (packed.count !== withAttrs.length) throw new Error('readdirplus: entries measured to fit did not')
    return packed.buf
  }
}

/** A getxattr/listxattr answer: the size alone when asked with size 0, ERANGE when it does not fit. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return xattrSizeOut(value.length)
  if (value.length > size) throw fail('ERANGE')
  return value
}
