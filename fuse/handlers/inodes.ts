import type { FileHandle, SnapshotFs } from '../../engine/index.js'
import { FATTR, GETATTR_FH, attrOut, type RequestHeader } from '../kernel.js'
import { callerCreds } from '../creds.js'
import type { FuseOps } from '../ops.js'
import { fail, toAttr } from '../replies.js'
import type { AccessIn, GetattrIn, SetattrIn } from '../requests.js'

const NS = 1_000_000_000n

/**
 * The inode a nodeid stands for: its attributes, its target if a symlink, the caller's access.
 * A node whose names are all gone (unlinked while open) is reached through its open files.
 */
export class InodeHandlers {
  constructor(private readonly ops: FuseOps) {}

  async getattr(h: RequestHeader, r: GetattrIn): Promise<Buffer> {
    const path = this.ops.nodes.path(h.nodeid)
    const file = r.flags & GETATTR_FH ? this.ops.openFiles.get(r.fh) : path === null ? this.ops.openFiles.ofNode(h.nodeid) : undefined
    if (!file && path === null) throw fail('ENOENT')
    const st = file ? await file.stat() : await (await this.ops.fsFor(h)).lstat(path!)
    return attrOut(toAttr(st), this.ops.cache.attrTimeout)
  }

  /** chown, chmod, truncate, utimes, in that order, as `valid` asks; answers with the attributes after. */
  async setattr(h: RequestHeader, r: SetattrIn): Promise<Buffer> {
    const fs = await this.ops.fsFor(h)
    const path = this.ops.nodes.path(h.nodeid)
    const file = r.valid & FATTR.FH ? this.ops.openFiles.get(r.fh) : path === null ? this.ops.openFiles.ofNode(h.nodeid) : undefined
    // with no name left, only a truncate through an open file can still be done
    if (path === null && !(file && (r.valid & ~(FATTR.FH | FATTR.SIZE)) === 0)) throw fail('ENOENT')
    if (r.valid & (FATTR.UID | FATTR.GID)) {
      const st = await fs.lstat(path!)
      await fs.lchown(path!, r.valid & FATTR.UID ? r.uid : st.uid, r.valid & FATTR.GID ? r.gid : st.gid)
    }
    if (r.valid & FATTR.MODE) await fs.chmod(path!, r.mode & 0o7777)
    if (r.valid & FATTR.SIZE) await this.truncate(h, fs, path, file, r.size)
    if (r.valid & (FATTR.ATIME | FATTR.MTIME)) await this.utimes(fs, path!, r)
    const st = path === null ? await file!.stat() : await fs.lstat(path)
    await this.ops.changedThrough(h.nodeid)
    return attrOut(toAttr(st), this.ops.cache.attrTimeout)
  }

  async readlink(h: RequestHeader): Promise<Buffer> {
    return Buffer.from(await (await this.ops.fsFor(h)).readlink(this.ops.pathOf(h.nodeid)))
  }

  async access(h: RequestHeader, r: AccessIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).access(this.ops.pathOf(h.nodeid), r.mask)
    return undefined
  }

  /** Through the open file when there is one: a write by its handle drops set-id bits by the writer's credentials. */
  private async truncate(h: RequestHeader, fs: SnapshotFs, path: string | null, file: FileHandle | undefined, size: number): Promise<void> {
    if (file) await file.truncate(size, await callerCreds(h.uid, h.gid, h.pid))
    else await fs.truncate(path!, size)
  }

  /** Each time as given, as now (null), or as it was when `valid` leaves it out. */
  private async utimes(fs: SnapshotFs, path: string, r: SetattrIn): Promise<void> {
    const st = await fs.lstat(path)
    const at = r.valid & FATTR.ATIME_NOW ? null : r.valid & FATTR.ATIME ? r.atime * NS + BigInt(r.atimensec) : st.atimeNs
    const mt = r.valid & FATTR.MTIME_NOW ? null : r.valid & FATTR.MTIME ? r.mtime * NS + BigInt(r.mtimensec) : st.mtimeNs
    await fs.lutimes(path, at, mt)
  }
}
