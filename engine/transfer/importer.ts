import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Store } from '../store.js'
import type { SnapshotFs } from '../snapshotfs.js'
import type { StoreLayer } from '../store/layer.js'
import type { InodeRecord } from '../store/records.js'
import { T, isDirType, joinPath, typeOf, type LowerNode, type LowerTree, type OvlNode } from '../overlay/node.js'
import type { NewObject, Populator } from '../overlay/populate.js'
import { fsError } from '../errors.js'
import type { ProgressFn } from '../types.js'
import { readHostLink, type HostEntry } from '../host/scan.js'
import { readHostXattrs } from '../host/xattrs.js'
import { IO_BYTES, SmallFileReader, forEachLimit, readFull, writeNonZeroRuns } from '../host/io.js'
import { attrChange, attrsOf, sameAttrs, sameContentStamp, sameHostData, sameStamp, stampOf } from './compare.js'

/** Files imported at once within one dir: enough to keep reads in flight when the disk is read. */
const IMPORT_CONCURRENCY = 16

/** What the importer works with: the snapshot being filled, and the parent it is compared with. */
export interface ImportTarget {
  store: Store
  /** New objects and attribute changes, in batches. */
  pop: Populator
  /** Removals and links, through paths (rare: only where the host differs from the parent). */
  fs: SnapshotFs
  layer: StoreLayer
  /** The parent's tree, absent for an import from scratch. */
  parent: LowerTree | undefined
}

/**
 * Makes the snapshot's tree equal a host tree: what the parent has already is kept (regular
 * files by their host stamp, unread), the rest is created, removed or changed through the
 * overlay, so the layer records exactly what an overlay mount would have for the changes.
 */
export class Importer {
  done = 0
  /** Host inodes with several names: where the first name went, and its inode in the snapshot. */
  private readonly linkGroups = new Map<string, { path: string; ino: number }>()
  /** Hard-linked parent inodes kept for a host inode; another host inode may not keep them too. */
  private readonly claims = new Map<number, string>()
  /**
   * Kept files that a link or unlink of another name may copy up during the import; a copy-up
   * drops the host stamp, which must then be written again.
   */
  private readonly keptLinked = new Map<number, HostEntry>()
  private readonly buffers: Buffer[] = []
  private readonly reader = new SmallFileReader()

  constructor(private readonly t: ImportTarget, private readonly total: number, private readonly progress: ProgressFn | undefined) {}

  /**
   * Makes the snapshot dir `dir` equal the host dir. `lower` is the parent's dir at the same
   * path when the two are merged; `created` when the dir was just made here.
   */
  async importDir(host: HostEntry, dir: OvlNode, lower: LowerNode | undefined, created: boolean): Promise<void> {
    const lowerChildren = new Map(lower && this.t.parent ? await this.t.parent.list(lower) : [])
    const present = new Set(host.children!.map((c) => c.name))
    for (const name of lowerChildren.keys()) if (!present.has(name)) await this.removeTree(joinPath(dir.path, name))
    const one = (c: HostEntry): Promise<void> => this.importEntry(c, dir, lowerChildren.get(c.name))
    // Files with one name are independent of each other: several at once hide the latency of
    // each one's host reads and store lookups. Hard-linked ones go in order (the first name is
    // made first), dirs one by one so that the number of files in flight stays bounded.
    const [single, rest] = partition(host.children!, (c) => typeOf(c.mode) !== T.DIR && c.nlink === 1)
    await forEachLimit(single, IMPORT_CONCURRENCY, one)
    for (const child of rest) await one(child)
    // last: making and removing children has moved the dir's mtime
    const xattrs = readHostXattrs(host.path, T.DIR)
    if (!created && sameAttrs(await this.t.pop.inodeOf(dir), host, xattrs)) return
    await this.t.pop.setAttrs(dir, attrChange(host, xattrs, undefined))
  }

  private async importEntry(e: HostEntry, dir: OvlNode, lower: LowerNode | undefined): Promise<void> {
    const path = joinPath(dir.path, e.name)
    const type = typeOf(e.mode)
    if (type === T.DIR) {
      if (lower && isDirType(lower.type)) return this.importDir(e, await this.existing(dir, e.name), lower, false)
      if (lower) await this.removeTree(path)
      return this.importDir(e, await this.t.pop.create(dir, e.name, attrsOf(e)), undefined, true)
    }
    const group = e.nlink > 1 ? this.linkGroups.get(e.key) : undefined
    if (group) {
      if (lower?.ino !== group.ino) {
        if (lower) await this.removeTree(path)
        await this.t.pop.external(() => this.t.fs.link(group.path, path))
      }
      return
    }
    let ino: number
    if (lower && !isDirType(lower.type) && (await this.keep(e, dir, lower))) {
      ino = lower.ino
    } else {
      if (lower) await this.removeTree(path)
      ino = await this.create(e, dir)
    }
    if (e.nlink > 1) this.linkGroups.set(e.key, { path, ino })
    if (type === T.REG) this.advance(e.size, e.path)
  }

  private async existing(dir: OvlNode, name: string): Promise<OvlNode> {
    const node = await this.t.pop.lookup(dir, name)
    if (!node) throw fsError('EIO', 'snapshotDir', joinPath(dir.path, name), 'the parent\'s object is missing from the snapshot')
    return node
  }

  /**
   * Keeps the parent's object at this name when the host object is the same: for a regular file
   * by its host stamp (the data is not read), else by target or device number. Attributes that
   * changed are updated on the kept inode.
   */
  private async keep(e: HostEntry, dir: OvlNode, lower: LowerNode): Promise<boolean> {
    const rec = await this.t.parent!.inode(lower)
    const type = typeOf(e.mode)
    if (typeOf(rec.mode) !== type) return false
    let claimed = false
    if (rec.nlink > 1) {
      const owner = this.claims.get(lower.ino)
      if (owner !== undefined && owner !== e.key) return false
      // claimed before anything else is awaited: another name may be looked at meanwhile
      if (owner === undefined) this.claims.set(lower.ino, e.key)
      claimed = owner === undefined
    }
    const kept = await this.sameObject(e, dir, rec)
    if (!kept && claimed) this.claims.delete(lower.ino)
    if (kept && type === T.REG && (rec.nlink > 1 || e.nlink > 1)) this.keptLinked.set(lower.ino, e)
    return kept
  }

  /** The host object is the parent's one, content-wise; attributes that differ are brought up to date. */
  private async sameObject(e: HostEntry, dir: OvlNode, rec: InodeRecord): Promise<boolean> {
    const type = typeOf(e.mode)
    let attrsUnchanged = false
    if (type === T.REG) {
      if (rec.origin && sameContentStamp(rec.origin, e)) attrsUnchanged = sameStamp(rec.origin, e)
      else if (rec.size !== e.size || !(await this.withBuffer((buf) => sameHostData(e, rec, this.t.store.chunks, buf)))) return false
    } else if (type === T.LNK) {
      if (rec.target !== (await readHostLink(e.path))) return false
    } else if (type === T.CHR || type === T.BLK) {
      if (rec.rdev !== e.rdev) return false
    }
    if (!attrsUnchanged) {
      const xattrs = readHostXattrs(e.path, type)
      if (!sameAttrs(rec, e, xattrs)) await this.t.pop.setAttrs(await this.existing(dir, e.name), attrChange(e, xattrs, type === T.REG ? stampOf(e) : undefined))
    }
    return true
  }

  /** Puts back the host stamps that copy-ups of kept hard-linked files dropped. */
  restoreStamps(): Promise<void> {
    return this.t.pop.external(async () => {
      for (const [ino, e] of this.keptLinked) {
        await this.t.store.lock.run(async () => {
          const rec = await this.t.layer.inode(ino)
          const stamp = stampOf(e)
          if (!rec || (rec.origin && rec.origin.every((v, i) => v === stamp[i]))) return
          const txn = this.t.store.db.txn()
          this.t.layer.putInode(txn, ino, { ...rec, origin: stamp })
          await txn.commit()
        })
      }
    })
  }

  /** Creates the host object in `dir` (nothing has its name there now); returns its inode number. */
  private async create(e: HostEntry, dir: OvlNode): Promise<number> {
    const type = typeOf(e.mode)
    switch (type) {
      case T.REG: return this.createFile(e, dir)
      case T.LNK: return (await this.t.pop.create(dir, e.name, { ...attrsOf(e), target: await readHostLink(e.path) })).ino
      case T.CHR: case T.BLK: case T.FIFO: case T.SOCK:
        return (await this.t.pop.create(dir, e.name, { ...attrsOf(e), xattrs: readHostXattrs(e.path, type) })).ino
      default:
        throw fsError('ENOTSUP', 'snapshotDir', e.path, `file type ${type.toString(8)} cannot be stored`)
    }
  }

  /**
   * A regular file: a small one read whole, a large one in pieces whose all-zero chunks are
   * skipped (they stay holes).
   */
  private async createFile(e: HostEntry, dir: OvlNode): Promise<number> {
    const attrs: NewObject = { ...attrsOf(e), xattrs: readHostXattrs(e.path, T.REG), origin: stampOf(e) }
    if (e.size <= IO_BYTES) return (await this.t.pop.createFile(dir, e.name, attrs, await this.reader.read(e.path, e.size))).ino
    return this.withBuffer(async (buf) => {
      const src = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW)
      try {
        const file = await this.t.pop.openFile(dir, e.name, attrs)
        let pos = 0
        let since = 0
        for (;;) {
          const n = await readFull(src, buf, pos)
          if (n === 0) break
          await writeNonZeroRuns(buf, n, pos, (off, len, at) => this.t.pop.write(file, buf.subarray(off, off + len), at))
          pos += n
          if ((since += n) >= 64 * IO_BYTES) {
            this.progress?.(this.done + pos, this.total, e.path)
            since = 0
          }
          if (n < buf.length) break
        }
        await this.t.pop.finish(file, pos)
        return file.node.ino
      } finally {
        await src.close()
      }
    })
  }

  /** Removes a name and everything below it; names of the parent leave whiteouts. */
  private removeTree(path: string): Promise<void> {
    const remove = async (p: string): Promise<void> => {
      if ((await this.t.fs.lstat(p)).isDirectory()) {
        for (const name of await this.t.fs.readdir(p)) await remove(joinPath(p, name))
        await this.t.fs.rmdir(p)
      } else {
        await this.t.fs.unlink(p)
      }
    }
    return this.t.pop.external(() => remove(path))
  }

  private async withBuffer<R>(fn: (buf: Buffer) => Promise<R>): Promise<R> {
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    try {
      return await fn(buf)
    } finally {
      this.buffers.push(buf)
    }
  }

  private advance(bytes: number, path: string): void {
    this.done += bytes
    this.progress?.(this.done, this.total, path)
  }
}

function partition<T>(items: T[], test: (t: T) => boolean): [T[], T[]] {
  const yes: T[] = []
  const no: T[] = []
  for (const t of items) (test(t) ? yes : no).push(t)
  return [yes, no]
}
