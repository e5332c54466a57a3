import type { InodeRecord } from '../store/records.js'
import { nowTimespec } from '../store/records.js'
import { FileContent } from '../store/filedata.js'
import { fsError } from '../errors.js'
import { T, isDirType, joinPath, typeOf, type OvlNode, type UpperWriter } from './node.js'
import { lookupChild, type LookupResult } from './namei.js'
import { copyUp } from './copyup.js'
import { touchedDirRecord } from './update.js'
import { Mutex } from './lock.js'
import { NewFile, PendingChanges, newRecord, type AttrChange, type NewObject } from './pending.js'
import { NAME_MAX, type Overlay } from './overlay.js'

export { NewFile, type AttrChange, type NewObject }

/**
 * Filling an active snapshot with many objects at once, for importers. Each new object is made
 * as createNode makes it (same lookup of the name, same opaque dir over a whiteout, same copy-up
 * of the parent, same change of the parent's times and link count), but complete: attributes,
 * xattrs and data in the one record, under a parent node the caller has resolved, and in a
 * batch that many objects share (pending.ts). Works with the store's full rights, as the
 * importer writes whatever the host holds.
 *
 * A batch is one LevelDB write, so a crash keeps all of it or none; what a crash can leave is a
 * part of the import in its uncommitted snapshot. Reads see the store, so the populator keeps
 * what its batches change until they are written: the records of dirs it touched, the names it
 * made in each dir, the objects not yet written. Nothing else writes the snapshot meanwhile
 * (an import's snapshot is its own), except through `external`.
 */
export class Populator {
  private readonly upper: UpperWriter
  /** One step at a time: the populator's state is shared by every caller. */
  private readonly steps = new Mutex()
  private readonly pending: PendingChanges
  /** Names made in each dir. */
  private readonly made = new Map<number, Set<string>>()
  /** Dirs made here: their upper part holds exactly the names in `made`, so a lookup reads nothing. */
  private readonly fresh = new Set<number>()
  /**
   * Changes made through paths (see `external`) copy up nodes the caller resolved before: such a
   * node is checked against the layer once per epoch, not copied up a second time.
   */
  private epoch = 0
  private readonly checked = new WeakMap<OvlNode, number>()

  constructor(private readonly ov: Overlay, private readonly syscall: string) {
    this.upper = ov.writable(syscall, '/')
    this.pending = new PendingChanges(ov)
    // the populator writes the layer behind the overlay's walks (its own nodes, its own batches)
    ov.bypassDentryCache()
  }

  root(): OvlNode {
    return this.stamp(this.ov.root())
  }

  /** An object that was in the tree before: the names made here are looked up once written. */
  lookup(dir: OvlNode, name: string): Promise<OvlNode | undefined> {
    return this.step(async () => {
      await this.refreshUpper(dir)
      if (this.made.get(dir.ino)?.has(name)) await this.pending.writeAll()
      const node = (await lookupChild(this.ov.ctx, dir, name)).node
      return node && this.stamp(node)
    })
  }

  /** The record of a node as it is now, changes not yet written included. */
  inodeOf(node: OvlNode): Promise<InodeRecord> {
    return this.step(() => this.currentRecord(node))
  }

  /** Makes a dir, symlink, device, fifo, socket or empty file, with all its attributes. */
  create(dir: OvlNode, name: string, attrs: NewObject): Promise<OvlNode> {
    return this.step(async () => {
      const { node, rec } = await this.addName(dir, name, attrs)
      if (isDirType(node.type)) {
        this.pending.keep(node.ino, rec)
        this.fresh.add(node.ino)
      } else {
        this.pending.putRecord(node.ino, rec)
      }
      await this.pending.writeIfFull()
      return node
    })
  }

  /** Makes a regular file with all its attributes and the content `data`. */
  createFile(dir: OvlNode, name: string, attrs: NewObject, data: Buffer): Promise<OvlNode> {
    return this.step(async () => {
      const file = await this.addFile(dir, name, attrs)
      await this.pending.writeData(file, data, 0)
      file.done = true
      await this.pending.writeIfFull()
      return file.node
    })
  }

  /** Makes a regular file whose data follows in pieces (`write`, then `finish`). */
  openFile(dir: OvlNode, name: string, attrs: NewObject): Promise<NewFile> {
    return this.step(async () => {
      const file = await this.addFile(dir, name, attrs)
      await this.pending.writeIfFull()
      return file
    })
  }

  write(file: NewFile, data: Buffer, position: number): Promise<void> {
    return this.step(async () => {
      if (file.done) throw fsError('EBADF', this.syscall, file.node.path, 'file already finished')
      await this.pending.writeData(file, data, position)
      await this.pending.writeIfFull()
    })
  }

  /** The file's final size: data not written up to it reads as zeroes (a hole). */
  finish(file: NewFile, size: number): Promise<void> {
    return this.step(async () => {
      if (file.content.size < size) {
        await file.content.truncate(size)
        file.unwritten = true
      }
      file.done = true
      await this.pending.writeIfFull()
    })
  }

  /** Sets attributes of an object (copied up first if it is only in the lower tree). */
  setAttrs(node: OvlNode, change: AttrChange): Promise<void> {
    return this.step(async () => {
      await this.refreshUpper(node)
      if (!node.upper) await copyUp(this.ov, node, this.syscall)
      this.pending.keep(node.ino, { ...(await this.currentRecord(node)), ...change, ctime: nowTimespec() })
      await this.pending.writeIfFull()
    })
  }

  /** Writes everything pending, and waits until it is written. */
  flush(): Promise<void> {
    return this.step(() => this.pending.writeAll())
  }

  /**
   * Runs a change made outside the populator, through paths (removing a tree, linking a name),
   * with no step of the populator running: what is pending is written first, and what the
   * populator knew of the layer is forgotten. The change must leave alone the files that are
   * still being written, whose records the populator keeps writing.
   */
  external<R>(change: () => Promise<R>): Promise<R> {
    return this.step(async () => {
      await this.pending.writeAll()
      this.pending.forget()
      this.made.clear()
      this.fresh.clear()
      this.epoch++
      return change()
    })
  }

  private step<R>(fn: () => Promise<R>): Promise<R> {
    return this.steps.run(fn)
  }

  private stamp(node: OvlNode): OvlNode {
    this.checked.set(node, this.epoch)
    return node
  }

  /**
   * Makes `node` and its ancestors say truly whether they are in the upper layer: one that says
   * no may have been copied up by a change through paths since it was resolved.
   */
  private async refreshUpper(node: OvlNode): Promise<void> {
    for (let n: OvlNode | null = node; n?.parent; n = n.parent) {
      if (n.upper || this.checked.get(n) === this.epoch) continue
      const entry = await this.upper.entry(n.parent.ino, n.name)
      if (entry && entry[0] === n.ino) n.upper = true
      this.checked.set(n, this.epoch)
    }
  }

  private async currentRecord(node: OvlNode): Promise<InodeRecord> {
    const kept = this.pending.kept(node.ino)
    if (kept) return kept
    if (this.pending.unwritten(node.ino)) await this.pending.writeAll()
    await this.refreshUpper(node)
    return this.ov.inodeOf(node)
  }

  /** The entry of a new object in `dir` and its record (not yet written); the parent's times move. */
  private async addName(dir: OvlNode, name: string, attrs: NewObject): Promise<{ node: OvlNode; rec: InodeRecord }> {
    const path = joinPath(dir.path, name)
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw fsError('EINVAL', this.syscall, path, 'invalid name')
    if (Buffer.byteLength(name) > NAME_MAX) throw fsError('ENAMETOOLONG', this.syscall, path)
    if (!isDirType(dir.type)) throw fsError('ENOTDIR', this.syscall, path)
    await this.refreshUpper(dir)
    let names = this.made.get(dir.ino)
    if (!names) this.made.set(dir.ino, (names = new Set()))
    if (names.has(name)) throw fsError('EEXIST', this.syscall, path)
    const found: LookupResult = this.fresh.has(dir.ino) ? { whiteout: false } : await lookupChild(this.ov.ctx, dir, name)
    if (found.node) throw fsError('EEXIST', this.syscall, path)
    await copyUp(this.ov, dir, this.syscall)
    const ino = await this.ov.env.allocIno()
    const rec = newRecord(attrs)
    const type = typeOf(rec.mode)
    // A dir made where a whiteout was hides whatever lower dir the whiteout hid.
    if (isDirType(type) && found.whiteout) rec.opaque = true
    this.pending.addEntry(dir.ino, name, ino, type)
    names.add(name)
    this.pending.keep(dir.ino, touchedDirRecord(await this.currentRecord(dir), isDirType(type) ? 1 : 0))
    const node: OvlNode = { name, path, parent: dir, ino, type, upper: true, opaque: rec.opaque === true }
    return { node: this.stamp(node), rec }
  }

  private async addFile(dir: OvlNode, name: string, attrs: NewObject): Promise<NewFile> {
    if (typeOf(attrs.mode) !== T.REG) throw fsError('EINVAL', this.syscall, joinPath(dir.path, name), 'not a regular file')
    const { node, rec } = await this.addName(dir, name, attrs)
    const file = new NewFile(node, rec, FileContent.empty(this.ov.env.chunks!))
    this.pending.addFile(file)
    return file
  }
}
