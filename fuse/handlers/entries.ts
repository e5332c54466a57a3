import type { SnapshotFs } from '../../engine/index.js'
import { entryOut, type RequestHeader } from '../kernel.js'
import type { FuseOps } from '../ops.js'
import { pathIn } from '../nodes.js'
import { answer, type Failure } from '../replies.js'
import type { LinkIn, LookupIn, MkdirIn, MknodIn, RenameIn, RmdirIn, SymlinkIn, UnlinkIn } from '../requests.js'

/** renameat2's RENAME_EXCHANGE: both names stay, each now reaching the other's inode. */
const RENAME_EXCHANGE = 2

/** Names in a directory (the request's nodeid): looking them up, making, linking, removing and renaming them. */
export class EntryHandlers {
  constructor(private readonly ops: FuseOps) {}

  /** A missing name is answered, not thrown (see `answer`); where entries are cached it is a negative entry (nodeid 0). */
  async lookup(h: RequestHeader, r: LookupIn): Promise<Buffer | Failure> {
    const dir = this.ops.pathOf(h.nodeid)
    const fs = await this.ops.fsFor(h)
    const [st] = await fs.lstatChildren(dir, [r.name])
    if (st) return this.ops.entry(fs, h.nodeid, r.name, pathIn(dir, r.name), st)
    const { entryTimeout } = this.ops.cache
    return entryTimeout > 0 ? entryOut(0, null, entryTimeout, 0) : answer('ENOENT')
  }

  mknod(h: RequestHeader, r: MknodIn): Promise<Buffer> {
    return this.make(h, r.name, (fs, path) => fs.mknod(path, r.mode, r.rdev))
  }

  mkdir(h: RequestHeader, r: MkdirIn): Promise<Buffer> {
    return this.make(h, r.name, (fs, path) => fs.mkdir(path, { mode: r.mode }))
  }

  symlink(h: RequestHeader, r: SymlinkIn): Promise<Buffer> {
    return this.make(h, r.name, (fs, path) => fs.symlink(r.target, path))
  }

  /** A new name for the inode of `oldNodeid`, whose other names (split nodes) change with it. */
  link(h: RequestHeader, r: LinkIn): Promise<Buffer> {
    return this.make(h, r.name, async (fs, path) => {
      await fs.link(this.ops.pathOf(r.oldNodeid), path)
      await this.ops.changedThrough(r.oldNodeid)
    })
  }

  unlink(h: RequestHeader, r: UnlinkIn): Promise<undefined> {
    return this.remove(h, r.name, (fs, path) => fs.unlink(path))
  }

  rmdir(h: RequestHeader, r: RmdirIn): Promise<undefined> {
    return this.remove(h, r.name, (fs, path) => fs.rmdir(path))
  }

  /** RENAME and RENAME2 (renameat2's flags: RENAME_NOREPLACE, RENAME_EXCHANGE). */
  async rename(h: RequestHeader, r: RenameIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).rename(this.ops.childOf(h.nodeid, r.name), this.ops.childOf(r.newDir, r.newName), r.flags)
    // the inode the new name reached before (replaced, or moved by an exchange) changed for its other names
    this.ops.changed(this.ops.nodes.nodeidOf(r.newDir, r.newName))
    this.ops.nodes.renamed(h.nodeid, r.name, r.newDir, r.newName, (r.flags & RENAME_EXCHANGE) !== 0)
    return undefined
  }

  /** Makes `name` in the request's directory as the caller, and answers with its entry. */
  private async make(h: RequestHeader, name: string, make: (fs: SnapshotFs, path: string) => Promise<unknown>): Promise<Buffer> {
    const fs = await this.ops.fsFor(h)
    const path = this.ops.childOf(h.nodeid, name)
    await make(fs, path)
    return this.ops.entry(fs, h.nodeid, name, path, await fs.lstat(path))
  }

  /** Removes `name` from the request's directory as the caller; the inode's other names lose a link. */
  private async remove(h: RequestHeader, name: string, remove: (fs: SnapshotFs, path: string) => Promise<unknown>): Promise<undefined> {
    const fs = await this.ops.fsFor(h)
    const path = this.ops.childOf(h.nodeid, name)
    await remove(fs, path)
    this.ops.changed(this.ops.nodes.nodeidOf(h.nodeid, name))
    this.ops.nodes.removed(h.nodeid, name)
    return undefined
  }
}
