import type { SnapshotFs, Stats, Creds } from '../engine/index.js'
import { IN_HEADER_SIZE, entryOut, notifyInvalInode, readHeader, reply, type RequestHeader } from './kernel.js'
import { NodeTable } from './nodes.js'
import { callerCreds } from './creds.js'
import type { CachePolicy } from './mount.js'
import { OpenFiles } from './openfiles.js'
import type { BackingDevice, PassthroughFiles } from './passthrough.js'
import { opcodeOf, type Answered, type Opcode } from './opcodes.js'
import { Failure, Framed, errnoOf, fail, toAttr, type Reply } from './replies.js'
import { describeRequest } from './requests.js'
import { RequestStats, STATS } from './stats.js'
import { SessionHandlers } from './handlers/session.js'
import { EntryHandlers } from './handlers/entries.js'
import { InodeHandlers } from './handlers/inodes.js'
import { FileHandlers } from './handlers/files.js'
import { DirHandlers } from './handlers/dirs.js'
import { XattrHandlers } from './handlers/xattrs.js'

/** STRATA_FUSE_TRACE=1 prints every request, by name and decoded, on stderr (the daemon's log). */
const TRACE = process.env.STRATA_FUSE_TRACE === '1'

export interface OpsOptions {
  cache: CachePolicy
  statfsPath: string
  /** The names of a lower hard link get a nodeid each, as a copy-up splits them (see NodeTable). */
  nodeidPerName: boolean
  /**
   * The device's passthrough registry, where the mount may hand the reading of host files to the
   * kernel (files of directory layers, on mounts without the writeback cache).
   */
  backing?: BackingDevice
}

/** Where replies go: small ones are written at once, READ data on libuv's pool (FuseChannel). */
export interface ReplySink {
  send(msg: Buffer): void
  sendOnPool(parts: Buffer[]): void
}

function trace(h: RequestHeader, op: Opcode | undefined, req: object | null): void {
  const name = op?.name ?? `unknown opcode ${h.opcode}`
  const fields = req === null ? '' : ` ${describeRequest(req)}`
  process.stderr.write(`fuse: ${performance.now().toFixed(3)} ${name} node ${h.nodeid} uid ${h.uid} pid ${h.pid}${fields}\n`)
}

/**
 * Answers FUSE requests with the engine. Each request is decoded into its typed struct
 * (requests.ts) and handed to the handler of its opcode (opcodes.ts), which makes the SnapshotFs
 * call of the same name as the caller. No overlay rule lives here; this class keeps what the
 * handlers share: the nodeids the kernel holds and the paths they stand for, the open files, the
 * caller's view of the tree, and the notices that keep the kernel's caches true.
 */
export class FuseOps {
  readonly nodes: NodeTable
  readonly openFiles = new OpenFiles()
  /**
   * Agreed at INIT on trees that never change: OPENDIR is answered with ENOSYS, and READDIR comes
   * without a handle (see DirHandlers).
   */
  noOpendir = false
  /** The kernel agreed to keep written data in its page cache (CachePolicy.writeback). */
  writeback = false
  /** Agreed at INIT where `opts.backing` is given: opens of host files go through passthrough. */
  passthrough?: PassthroughFiles

  readonly session = new SessionHandlers(this)
  readonly entries = new EntryHandlers(this)
  readonly inodes = new InodeHandlers(this)
  readonly files = new FileHandlers(this)
  readonly dirs = new DirHandlers(this)
  readonly xattrs = new XattrHandlers(this)

  private readonly callers = new Map<string, SnapshotFs>()
  /** Per-opcode counts and times, kept when STRATA_FUSE_STATS=1 (written out by `closeAll`). */
  private readonly stats = STATS ? new RequestStats() : undefined
  readonly send: (msg: Buffer) => void

  constructor(readonly root: SnapshotFs, readonly opts: OpsOptions, private readonly replies: ReplySink) {
    this.send = replies.send
    this.nodes = new NodeTable(opts.nodeidPerName)
  }

  get cache(): CachePolicy {
    return this.opts.cache
  }

  /** One request from the device; `recycle` hands its buffer back once nothing refers to it. */
  handle(buf: Buffer, length: number, recycle: () => void): void {
    const h = readHeader(buf)
    const body = buf.subarray(IN_HEADER_SIZE, length)
    const op = opcodeOf(h.opcode)
    if (op?.unanswered) {
      // FORGET, BATCH_FORGET, INTERRUPT: no reply, no caller to look up, nothing to wait for
      const req = op.decode(body)
      if (TRACE) trace(h, op, req)
      op.handle(this, h, req)
      recycle()
      return
    }
    const taken = this.stats ? performance.now() : 0
    let req: object | undefined
    this.dispatch(h, op, body, (decoded) => { req = decoded }).then(
      (out) => {
        this.stats?.answered(op!.name, taken)
        if (out instanceof Failure) return this.send(reply(h.unique, out.errno))
        if (!(out instanceof Framed)) return this.send(reply(h.unique, 0, out))
        this.replies.sendOnPool(out.parts)
      },
      (err: unknown) => {
        this.stats?.answered(op?.name ?? `opcode ${h.opcode}`, taken)
        this.send(reply(h.unique, errnoOf(err)))
      },
    ).finally(() => {
      // a large WRITE's payload may be kept by the engine's buffers: that buffer is never reused
      if (!(req && op?.keepsBody?.(req))) recycle()
    })
  }

  /** Decodes and handles a request that gets a reply; a body too short to decode is answered EIO. */
  private async dispatch(h: RequestHeader, op: Answered | undefined, body: Buffer, decoded: (req: object) => void): Promise<Reply> {
    if (!op) {
      if (TRACE) trace(h, op, null)
      throw fail('ENOSYS')
    }
    const req = op.decode(body)
    decoded(req)
    if (TRACE) trace(h, op, req)
    return op.handle(this, h, req)
  }

  /** Closes what the kernel left open when the session ended (an unmount aborts pending releases). */
  async closeAll(): Promise<void> {
    if (this.stats) process.stderr.write(this.stats.report())
    const files = this.openFiles.releaseAll()
    this.dirs.releaseAll()
    for (const f of files) await f.close().catch(() => {})
  }

  /** The tree as the caller of `h` sees it: the engine checks permissions with its credentials. */
  async fsFor(h: RequestHeader): Promise<SnapshotFs> {
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
  changed(nodeid: number | undefined): void {
    if (nodeid === undefined) return
    for (const id of this.nodes.siblings(nodeid)) setImmediate(() => this.send(notifyInvalInode(id)))
  }

  /**
   * A write took setuid/setgid off the file of `nodeid`. The kernel must never run the file with
   * a bit the write removed, yet after a WRITE reply it refreshes only size and times: the mode
   * it holds stays cached for the attribute timeout, and exec trusts it. Negotiating
   * FUSE_HANDLE_KILLPRIV_V2 does not change that (measured on Linux 6.18: the kernel flags the
   * write FUSE_WRITE_KILL_SUIDGID, the server clears the bits, and the kernel still execs with
   * the cached setuid mode), and leaving killpriv to the kernel (no HANDLE_KILLPRIV) would have it
   * send, for a writer who does not own the file, a SETATTR of the mode that the engine refuses as
   * a chmod by a non-owner. So the kernel is told to drop the node's attributes (not its
   * data: the write holds its pages locked) before the reply goes out; its next permission
   * check or stat asks again. SETATTR replies carry the new mode themselves, and an open with
   * O_TRUNC makes the kernel drop all attributes.
   */
  modeDropped(nodeid: number): void {
    for (const id of [nodeid, ...this.nodes.siblings(nodeid)]) this.send(notifyInvalInode(id, true))
  }

  /**
   * Whether the table must give a name a node of its own: a lower hard link that a copy-up
   * through it would split (see NodeTable). Only a non-dir with other names can part from them.
   */
  async splits(fs: SnapshotFs, path: string, st: Stats): Promise<boolean> {
    if (!this.nodes.splits || st.nlink <= 1 || st.isDirectory()) return false
    // in doubt, a node of its own: a shared one would show one name's changes through the others
    return fs.splitsOnCopyUp(path).catch(() => true)
  }

  /**
   * A change through a split node may have copied its name up, giving it a new inode: the node
   * (with the files open on it) stands for that inode from now on, before `changed` asks for
   * the node's siblings.
   */
  async refresh(nodeid: number): Promise<void> {
    const path = this.nodes.isSplit(nodeid) ? this.nodes.path(nodeid) : null
    if (path === null) return
    const st = await this.root.lstat(path).catch(() => null)
    if (st) this.nodes.refresh(nodeid, st.ino, await this.splits(this.root, path, st))
  }

  /** A change through `nodeid` (attributes, xattrs, a new link): `refresh`, then `changed`. */
  async changedThrough(nodeid: number): Promise<void> {
    await this.refresh(nodeid)
    this.changed(nodeid)
  }

  /** The path of a node the kernel holds, or ENOENT when none of its names is left. */
  pathOf(nodeid: number): string {
    const p = this.nodes.path(nodeid)
    if (p === null) throw fail('ENOENT')
    return p
  }

  /** The path of `name` in the directory `parent`, or ENOENT when the directory is gone. */
  childOf(parent: number, name: string): string {
    const p = this.nodes.childPath(parent, name)
    if (p === null) throw fail('ENOENT')
    return p
  }

  /** The lookup reply for a name just resolved or made; the kernel now holds one lookup of it. */
  async entry(fs: SnapshotFs, parent: number, name: string, path: string, st: Stats): Promise<Buffer> {
    const nodeid = this.nodes.remember(parent, name, st.ino, await this.splits(fs, path, st))
    return entryOut(nodeid, toAttr(st), this.cache.entryTimeout, this.cache.attrTimeout)
  }
}
