import type { InodeRecord } from '../store/records.js'
import type { FileData } from './data.js'
import { nowTimespec } from '../store/records.js'
import type { Overlay } from './overlay.js'

/** Unflushed data past this many bytes is written out even before close or sync. */
const FLUSH_BYTES = 16 * 1024 * 1024

/**
 * An inode that is open in an overlay. All handles on the inode share it, so a handle opened
 * before a copy-up reads what is written after it, and an unlinked file stays readable while open.
 */
export class LiveInode {
  opens = 0
  private content?: FileData
  /** Record fields changed with no data change, still to be flushed. */
  private recordChanged = false

  constructor(private readonly ov: Overlay, readonly ino: number, private rec: InodeRecord, public inUpper: boolean, readonly path: string) {}

  /** The record as the overlay shows it now, unflushed size and times included. */
  async current(): Promise<InodeRecord> {
    return this.content ? { ...this.rec, size: this.content.size } : this.rec
  }

  /** Attribute changes made through paths (chmod, utimes...) while the file is open. */
  replaceRecord(rec: InodeRecord): void {
    this.rec = { ...rec, size: this.content?.size ?? rec.size }
  }

  /**
   * The inode now has an upper record. Data kept where it was (the same chunks) stays open; data
   * that the copy moved (into a directory layer's file) is opened again from the copy.
   */
  async movedUp(rec: InodeRecord): Promise<void> {
    if (this.content && this.content.hostPath !== rec.hostPath) {
      await this.content.release()
      this.content = undefined
    }
    this.rec = { ...rec, size: this.content?.size ?? rec.size }
    this.inUpper = true
    await this.openHostData()
  }

  /**
   * A directory layer's file is opened on the host at once: its host path names it only until the
   * next rename or unlink, while the open file must keep reaching the same data.
   */
  async openHostData(): Promise<void> {
    if (this.rec.hostPath !== undefined) await this.data()
  }

  private async data(): Promise<FileData> {
    if (!this.content) this.content = await this.ov.openData(this.rec, this.path, this.inUpper)
    return this.content
  }

  /** The last handle closed. */
  async release(): Promise<void> {
    await this.content?.release()
    this.content = undefined
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.data()).read(buf, offset, length, position)
  }

  /** The host descriptor of a directory layer's file (opened at once, see openHostData). */
  hostDescriptor(): number | undefined {
    return this.content?.hostDescriptor?.()
  }

  async slices(length: number, position: number): Promise<Buffer[]> {
    const data = await this.data()
    if (data.slices) return data.slices(length, position)
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, data.size - position)))
    const n = buf.length > 0 ? await data.read(buf, 0, buf.length, position) : 0
    return n > 0 ? [buf.subarray(0, n)] : []
  }

  async write(data: Uint8Array, position: number, mode?: number): Promise<void> {
    // writing nothing changes nothing, times and setuid bits included (generic_write_checks)
    if (data.length === 0) return
    const c = await this.data()
    await c.write(data, position)
    const now = nowTimespec()
    this.rec = { ...this.rec, size: c.size, mtime: now, ctime: now, mode: mode ?? this.rec.mode }
    if (c.dirtyBytes > FLUSH_BYTES) await this.flush()
  }

  async truncate(size: number, mode?: number): Promise<void> {
    const c = await this.data()
    await c.truncate(size)
    const now = nowTimespec()
    this.rec = { ...this.rec, size, mtime: now, ctime: now, mode: mode ?? this.rec.mode }
    // a truncate to the same size changes no data but still the times (and maybe the mode)
    this.recordChanged = true
  }

  get dirty(): boolean {
    return this.content?.isChanged === true
  }

  /** Chunk refs of the data as last stored (gc keeps them while the file is open). */
  storedRecord(): InodeRecord {
    return this.rec
  }

  /**
   * Writes unflushed data and attributes to the upper layer in one batch. `durable` (fsync) also
   * makes every earlier batch durable, so it syncs even when nothing here is left to write.
   */
  async flush(durable = false): Promise<void> {
    const c = this.content
    const pending = this.inUpper && this.ov.upper && this.rec.nlink > 0 && c !== undefined && (c.isChanged || this.recordChanged)
    if (!pending) {
      if (durable) {
        await c?.sync()
        await this.ov.upper?.sync()
      }
      return
    }
    const txn = this.ov.txn()
    const fields = await c!.flush(txn, durable)
    this.rec = { ...this.rec, ...fields }
    this.ov.upper!.putInode(txn, this.ino, this.rec)
    await txn.commit(durable)
    this.recordChanged = false
  }

  unlinked(): void {
    this.rec = { ...this.rec, nlink: 0 }
  }
}
