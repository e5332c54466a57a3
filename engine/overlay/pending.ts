import type { Txn } from '../store/db.js'
import type { FileContent } from '../store/filedata.js'
import type { InodeRecord } from '../store/records.js'
import { nowTimespec } from '../store/records.js'
import { BatchPipeline } from '../store/pipeline.js'
import { T, isDirType, typeOf, type OvlNode, type UpperWriter } from './node.js'
import { writeInode } from './update.js'
import type { Overlay } from './overlay.js'

/** Every attribute of a new object, as the host shows it. */
export type NewObject = Pick<InodeRecord, 'mode' | 'uid' | 'gid' | 'rdev' | 'atime' | 'mtime' | 'xattrs' | 'origin' | 'target'>
/** Attributes set on an object; a key given with the value undefined removes the field. */
export type AttrChange = Partial<Pick<InodeRecord, 'mode' | 'uid' | 'gid' | 'atime' | 'mtime' | 'xattrs' | 'origin'>>

/** A regular file made by a Populator, its data still arriving. */
export class NewFile {
  done = false
  /** The record has changed since it was last put in a batch. */
  unwritten = true
  constructor(readonly node: OvlNode, public rec: InodeRecord, readonly content: FileContent) {}
}

/**
 * A batch is written when it holds this much new file data or this many new objects: large
 * enough that the cost of a write vanishes, small enough that the next batch fills while one is
 * written (twice these took a tenth longer: bench/engine.ts, ingest and resnapshot).
 */
const BATCH_BYTES = 8 * 1024 * 1024
const BATCH_OBJECTS = 1024

/**
 * What a Populator has changed and not yet written, and the writing of it in batches. The
 * caller runs one method at a time.
 */
export class PendingChanges {
  private readonly pipeline: BatchPipeline
  private readonly upper: UpperWriter
  /** Entries and records of objects complete at their making; file data and kept records join at the write. */
  private txn: Txn
  private bytes = 0
  /** Objects made in the batch being filled, and in the one before (maybe still being written). */
  private inos = new Set<number>()
  private previousInos = new Set<number>()
  /** Records of inodes changed here: the newest, whether written yet or not. */
  private readonly records = new Map<number, InodeRecord>()
  private readonly unwrittenRecords = new Set<number>()
  private readonly files = new Set<NewFile>()

  constructor(private readonly ov: Overlay) {
    this.upper = ov.upper!
    this.pipeline = new BatchPipeline(ov.env.lock)
    this.txn = ov.env.db!.txn()
  }

  /** The entry of a new object; its record follows by putRecord, addFile or keep. */
  addEntry(dirIno: number, name: string, ino: number, type: number): void {
    this.upper.putEntry(this.txn, dirIno, name, [ino, type])
    this.inos.add(ino)
  }

  /** The final record of an object made complete (not a file, not a dir). */
  putRecord(ino: number, rec: InodeRecord): void {
    this.upper.putInode(this.txn, ino, rec)
  }

  addFile(file: NewFile): void {
    this.files.add(file)
  }

  async writeData(file: NewFile, data: Buffer, position: number): Promise<void> {
    if (data.length === 0) return
    await file.content.write(data, position)
    file.unwritten = true
    this.bytes += data.length
  }

  /** Keeps `rec` as the inode's newest record, written with the next batch. */
  keep(ino: number, rec: InodeRecord): void {
    this.records.set(ino, rec)
    this.unwrittenRecords.add(ino)
  }

  kept(ino: number): InodeRecord | undefined {
    return this.records.get(ino)
  }

  /** The object's record is in no written batch yet. */
  unwritten(ino: number): boolean {
    return this.inos.has(ino) || this.previousInos.has(ino)
  }

  /** Forgets the kept records (others are about to change the layer). */
  forget(): void {
    this.records.clear()
  }

  async writeIfFull(): Promise<void> {
    if (this.bytes >= BATCH_BYTES || this.inos.size >= BATCH_OBJECTS) await this.writeBatch()
  }

  /** Writes everything and waits until it is written. */
  async writeAll(): Promise<void> {
    await this.writeBatch()
    await this.pipeline.drain()
    this.previousInos = new Set()
  }

  /**
   * Hands the batch to the pipeline, which adds the new files' data and records and the kept
   * records, and writes it while the next batch fills.
   */
  private async writeBatch(): Promise<void> {
    if (this.txn.size === 0 && this.files.size === 0 && this.unwrittenRecords.size === 0) return
    const txn = this.txn
    const files = [...this.files]
    const records = [...this.unwrittenRecords].map((ino): [number, InodeRecord] => [ino, this.records.get(ino)!])
    this.unwrittenRecords.clear()
    for (const f of files) if (f.done) this.files.delete(f)
    this.txn = this.ov.env.db!.txn()
    this.bytes = 0
    const inos = this.inos
    this.inos = new Set()
    await this.pipeline.submit(txn, async () => {
      for (const file of files) {
        if (file.content.isChanged) file.rec = { ...file.rec, ...(await file.content.flush(txn)) }
        if (file.unwritten) this.upper.putInode(txn, file.node.ino, file.rec)
        file.unwritten = false
      }
      for (const [ino, rec] of records) writeInode(this.ov, txn, ino, rec)
    })
    // the batch before this one is written now
    this.previousInos = inos
  }
}

/** The record of a new object: a fresh link count, the time of its making as ctime. */
export function newRecord(attrs: NewObject): InodeRecord {
  const type = typeOf(attrs.mode)
  const device = type === T.CHR || type === T.BLK
  const rec: InodeRecord = {
    mode: attrs.mode, uid: attrs.uid, gid: attrs.gid, rdev: device ? attrs.rdev : 0,
    size: type === T.LNK && attrs.target !== undefined ? Buffer.byteLength(attrs.target) : 0,
    nlink: isDirType(type) ? 2 : 1, atime: attrs.atime, mtime: attrs.mtime, ctime: nowTimespec(),
  }
  if (attrs.xattrs && Object.keys(attrs.xattrs).length > 0) rec.xattrs = attrs.xattrs
  if (attrs.origin) rec.origin = attrs.origin
  if (type === T.LNK) rec.target = attrs.target ?? ''
  return rec
}
