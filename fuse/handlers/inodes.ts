import type { AttrChanges, FileHandle, SnapshotFs, Stats } from '../../engine/index.js'
import { FATTR, GETATTR_FH, attrOut, type Attr, type RequestHeader } from '../kernel.js'
import { callerCreds } from '../creds.js'
import type { FuseOps } from '../ops.js'
import { fail, toAttr } from '../replies.js'
import type { AccessIn, GetattrIn, SetattrIn } from '../requests.js'

const NS = 1_000_000_000n
/** The time fields of a SETATTR (the kernel's write-back of a writer's times included). */
const TIME_FIELDS = FATTR.ATIME | FATTR.MTIME | FATTR.CTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW

/**
 * The times of a SETATTR, each as given or as now (null); one left out is kept. The kernel has
 * checked the caller's right to set them (default_permissions), and with the writeback cache it
 * also sends the times it kept for a writer, who may write but not set times on a file it does
 * not own: the engine is told they were checked.
 */
function times(r: SetattrIn): AttrChanges {
  if (!(r.valid & (FATTR.ATIME | FATTR.MTIME))) return {}
  const atime = r.valid & FATTR.ATIME_NOW ? null : r.valid & FATTR.ATIME ? r.atime * NS + BigInt(r.atimensec) : undefined
  const mtime = r.valid & FATTR.MTIME_NOW ? null : r.valid & FATTR.MTIME ? r.mtime * NS + BigInt(r.mtimensec) : undefined
  return { atime, mtime, timesChecked: true }
}

/** Attributes for a reply about a regular file that no longer exists: nothing of it is kept. */
function goneFile(ino: number): Attr {
  return { ino, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, mode: 0o100000, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 4096 }
}

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

  /**
   * chown, chmod, truncate, utimes, in that order, as `valid` asks; answers with the attributes
   * after. Without a truncate, one engine call makes every change and answers the attributes.
   */
  async setattr(h: RequestHeader, r: SetattrIn): Promise<Buffer> {
    const fs = await this.ops.fsFor(h)
    const path = this.ops.nodes.path(h.nodeid)
    const file = r.valid & FATTR.FH ? this.ops.openFiles.get(r.fh) : path === null ? this.ops.openFiles.ofNode(h.nodeid) : undefined
    if (path === null) return this.setattrNameless(h, r, file)
    const owner = r.valid & (FATTR.UID | FATTR.GID) ? { uid: r.valid & FATTR.UID ? r.uid : -1, gid: r.valid & FATTR.GID ? r.gid : -1 } : {}
    const mode = r.valid & FATTR.MODE ? { mode: r.mode & 0o7777 } : {}
    let st: Stats
    if (r.valid & FATTR.SIZE) {
      if (r.valid & (FATTR.UID | FATTR.GID | FATTR.MODE)) await fs.setattr(path, { ...owner, ...mode })
      await this.truncate(h, file ?? { fs, path }, r.size)
      st = await fs.setattr(path, times(r))
    } else {
      st = await fs.setattr(path, { ...owner, ...mode, ...times(r) }, { open: file ?? this.ops.openFiles.ofNode(h.nodeid) })
    }
    await this.ops.changedThrough(h.nodeid)
    return attrOut(toAttr(st), this.ops.cache.attrTimeout)
  }

  /**
   * An inode with no name left. Through an open file it can still be truncated; the times the
   * kernel keeps under the writeback cache, which it writes back for a file even after its last
   * name and handle are gone (at syncfs, or when it evicts the inode), go with the inode: they
   * are answered as done, since an error here would fail the writer's syncfs(2). The kernel
   * reads nothing from the reply to such a write-back.
   */
  private async setattrNameless(h: RequestHeader, r: SetattrIn, file: FileHandle | undefined): Promise<Buffer> {
    const other = r.valid & ~(FATTR.FH | FATTR.SIZE | TIME_FIELDS)
    if (other !== 0 || (r.valid & FATTR.SIZE && !file)) throw fail('ENOENT')
    if (r.valid & FATTR.SIZE) await this.truncate(h, file!, r.size)
    if (file) return attrOut(toAttr(await file.stat()), this.ops.cache.attrTimeout)
    return attrOut(goneFile(h.nodeid), 0)
  }

  async readlink(h: RequestHeader): Promise<Buffer> {
    return Buffer.from(await (await this.ops.fsFor(h)).readlink(this.ops.pathOf(h.nodeid)))
  }

  async access(h: RequestHeader, r: AccessIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).access(this.ops.pathOf(h.nodeid), r.mask)
    return undefined
  }

  /** Through the open file when there is one: a write by its handle drops set-id bits by the writer's credentials. */
  private async truncate(h: RequestHeader, target: FileHandle | { fs: SnapshotFs; path: string }, size: number): Promise<void> {
    if ('truncate' in target) await target.truncate(size, await callerCreds(h.uid, h.gid, h.pid))
    else await target.fs.truncate(target.path, size)
  }

}
