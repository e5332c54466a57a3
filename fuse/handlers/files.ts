import { constants as fsConstants } from 'node:fs'
import type { FileHandle, OpenOptions } from '../../engine/index.js'
import { FOPEN, FSYNC_FDATASYNC, entryOut, openOut, replyParts, writeOut, type RequestHeader } from '../kernel.js'
import { callerCreds } from '../creds.js'
import type { FuseOps } from '../ops.js'
import { Framed, toAttr } from '../replies.js'
import type { CreateIn, FlushIn, FsyncIn, OpenIn, ReadIn, ReleaseIn, WriteIn } from '../requests.js'
import { MAX_WRITE } from './session.js'

const { O_ACCMODE, O_APPEND, O_TRUNC, O_CREAT, O_EXCL, O_WRONLY } = { O_ACCMODE: 3, ...fsConstants }
/** The open(2) flags the engine acts on; the kernel's own (O_LARGEFILE, O_NOFOLLOW…) stay behind. */
const OPEN_FLAGS = O_ACCMODE | O_APPEND | O_TRUNC
const CREATE_FLAGS = OPEN_FLAGS | O_CREAT | O_EXCL

/** Open files: the engine's FileHandles, known to the kernel by fh (OpenFiles). */
export class FileHandlers {
  constructor(private readonly ops: FuseOps) {}

  async open(h: RequestHeader, r: OpenIn): Promise<Buffer> {
    const file = await (await this.ops.fsFor(h)).open(this.ops.pathOf(h.nodeid), this.engineFlags(r.flags, OPEN_FLAGS), 0, this.openOptions(r.flags))
    // opening for writing may have copied a split node's name up; a truncate changed the file for its other names
    if (r.flags & (O_ACCMODE | O_TRUNC)) await this.ops.refresh(h.nodeid)
    if (r.flags & O_TRUNC) this.ops.changed(h.nodeid)
    const fh = this.ops.openFiles.opened(h.nodeid, file)
    const backingId = this.backingFor(fh, h.nodeid, file)
    return openOut(fh, backingId === undefined ? this.openFlags() : FOPEN.PASSTHROUGH, backingId)
  }

  /** A file of a directory layer is read by the kernel from its host file (FUSE passthrough). */
  private backingFor(fh: number, nodeid: number, file: FileHandle): number | undefined {
    const hostFd = this.ops.passthrough ? file.hostDescriptor() : undefined
    return hostFd === undefined ? undefined : this.ops.passthrough!.attach(fh, nodeid, hostFd)
  }

  /** open(2) with O_CREAT: the new name's entry and the open file, in one reply. */
  async create(h: RequestHeader, r: CreateIn): Promise<Buffer[]> {
    const path = this.ops.childOf(h.nodeid, r.name)
    const fs = await this.ops.fsFor(h)
    const file = await fs.open(path, this.engineFlags(r.flags, CREATE_FLAGS) | O_CREAT, r.mode, this.openOptions(r.flags))
    const st = await file.stat()
    const nodeid = this.ops.nodes.remember(h.nodeid, r.name, st.ino, await this.ops.splits(fs, path, st))
    const { entryTimeout, attrTimeout } = this.ops.cache
    return [entryOut(nodeid, toAttr(st), entryTimeout, attrTimeout), openOut(this.ops.openFiles.opened(nodeid, file), this.openFlags())]
  }

  async read(h: RequestHeader, r: ReadIn): Promise<Framed> {
    const file = this.ops.openFiles.file(r.fh)
    // the data goes out as the engine holds it (views of its chunks), behind the header, in one
    // writev(2): no copy of it is made in this process
    return new Framed(replyParts(h.unique, await file.readSlices(Math.min(r.size, MAX_WRITE), r.offset)))
  }

  /** As the writer: a write by another user than root drops set-id bits, and the kernel must forget the mode it holds. */
  async write(h: RequestHeader, r: WriteIn): Promise<Buffer> {
    const { bytesWritten, setIdCleared } = await this.ops.openFiles.file(r.fh).write(r.data, 0, r.size, r.offset, await callerCreds(h.uid, h.gid, h.pid))
    if (setIdCleared) this.ops.modeDropped(h.nodeid)
    this.ops.changed(h.nodeid)
    return writeOut(bytesWritten)
  }

  /** close(2): what was written goes to the store before close returns (RELEASE comes later, unawaited). */
  async flush(_h: RequestHeader, r: FlushIn): Promise<undefined> {
    await this.ops.openFiles.get(r.fh)?.flush()
    return undefined
  }

  async release(_h: RequestHeader, r: ReleaseIn): Promise<undefined> {
    this.ops.passthrough?.release(r.fh)
    await this.ops.openFiles.released(r.fh)?.close()
    return undefined
  }

  async fsync(_h: RequestHeader, r: FsyncIn): Promise<undefined> {
    const file = this.ops.openFiles.file(r.fh)
    await (r.fsyncFlags & FSYNC_FDATASYNC ? file.datasync() : file.sync())
    return undefined
  }

  /**
   * The open flags the engine gets. With the writeback cache the kernel places every write
   * itself, appends included (the WRITE carries the offset), so O_APPEND must not move it again.
   */
  private engineFlags(flags: number, kept: number): number {
    return flags & kept & (this.ops.writeback ? ~O_APPEND : ~0)
  }

  /** With the writeback cache the kernel reads through write-only handles too (see OpenOptions). */
  private openOptions(flags: number): OpenOptions {
    return this.ops.writeback && (flags & O_ACCMODE) === O_WRONLY ? { pageCacheReads: true } : {}
  }

  private openFlags(): number {
    return this.ops.cache.keepCache ? FOPEN.KEEP_CACHE : 0
  }
}
