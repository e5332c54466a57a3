import { join } from 'node:path'
import { Level } from 'level'
import { Packr } from 'msgpackr'
import { xxh64 } from '@node-rs/xxhash'
import { WRITE_BUFFER } from '../../engine/store/db.js'

/**
 * A stripped-down copy of the engine's chunk layout with the chunk size as a parameter: fixed
 * chunks keyed by xxh64, 9-byte refs, refs of long files in pages of PAGE_REFS refs, one record
 * per file. It lets bench/chunk-size.ts compare chunk sizes without touching the engine.
 */
export const REF_SIZE = 9
export const PAGE_REFS = 1024
/** Bytes per LevelDB batch while ingesting, the same for every chunk size. */
export const BATCH_BYTES = 16 * 1024 * 1024

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
type H64 = (data: Uint8Array) => bigint
export async function hasher(): Promise<H64> {
  return (data) => xxh64(data)
}

export interface FileModel {
  size: number
  refs: Buffer
}

export class ChunkDb {
  private constructor(readonly db: Level<string, Buffer>, private readonly h: H64, readonly chunkSize: number) {}

  static async open(dir: string, chunkSize: number): Promise<ChunkDb> {
    // the store's LevelDB options, so that the comparison holds for the store as configured
    const db = new Level<string, Buffer>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer', writeBufferSize: WRITE_BUFFER })
    await db.open()
    return new ChunkDb(db, await hasher(), chunkSize)
  }

  close(): Promise<void> {
    return this.db.close()
  }

  ref(data: Uint8Array): Buffer {
    const r = Buffer.alloc(REF_SIZE)
    r.writeBigUInt64BE(this.h(data))
    return r
  }

  static key(ref: Buffer): string {
    return `C/${ref.toString('hex')}`
  }

  /** Cuts `data` into chunks, hashes them and writes them in batches of BATCH_BYTES, then the record. */
  async ingest(name: string, data: Buffer): Promise<FileModel> {
    const n = Math.ceil(data.length / this.chunkSize)
    const refs = Buffer.alloc(n * REF_SIZE)
    let batch = this.db.batch()
    let pending = 0
    for (let i = 0; i < n; i++) {
      const chunk = data.subarray(i * this.chunkSize, Math.min(data.length, (i + 1) * this.chunkSize))
      const ref = this.ref(chunk)
      ref.copy(refs, i * REF_SIZE)
      batch.put(ChunkDb.key(ref), chunk)
      pending += chunk.length
      if (pending >= BATCH_BYTES) {
        await batch.write()
        batch = this.db.batch()
        pending = 0
      }
    }
    const file = { size: data.length, refs }
    for (const [k, v] of this.recordWrites(name, file, undefined)) batch.put(k, v)
    await batch.write()
    return file
  }

  /**
   * The writes that store `file`: its record and its ref pages. With `onlyPage`, only that page is
   * new (the others are unchanged and already stored, so a real store dedups them).
   */
  recordWrites(name: string, file: FileModel, onlyPage: number | undefined): Array<[string, Buffer]> {
    const out: Array<[string, Buffer]> = []
    const n = file.refs.length / REF_SIZE
    if (n <= PAGE_REFS) {
      out.push([`I/${name}`, packr.pack({ size: file.size, chunks: file.refs })])
      return out
    }
    const pageRefs: Buffer[] = []
    for (let p = 0; p * PAGE_REFS < n; p++) {
      const page = file.refs.subarray(p * PAGE_REFS * REF_SIZE, Math.min(n, (p + 1) * PAGE_REFS) * REF_SIZE)
      const ref = this.ref(page)
      pageRefs.push(ref)
      if (onlyPage === undefined || onlyPage === p) out.push([ChunkDb.key(ref), Buffer.from(page)])
    }
    out.push([`I/${name}`, packr.pack({ size: file.size, pages: Buffer.concat(pageRefs) })])
    return out
  }

  /**
   * A 4 KiB write at `offset` in a new layer: read the chunk, patch it, store it, and store the
   * file's new record (and the one changed page of refs). Returns the bytes this adds to the store.
   */
  async overwrite(name: string, file: FileModel, offset: number, patch: Buffer): Promise<{ bytes: number; keys: number; file: FileModel }> {
    const idx = Math.floor(offset / this.chunkSize)
    const old = await this.db.get(ChunkDb.key(file.refs.subarray(idx * REF_SIZE, (idx + 1) * REF_SIZE)))
    if (!old) throw new Error(`chunk ${idx} is missing`)
    const chunk = Buffer.from(old)
    patch.copy(chunk, offset - idx * this.chunkSize)
    const ref = this.ref(chunk)
    const refs = Buffer.from(file.refs)
    ref.copy(refs, idx * REF_SIZE)
    const next = { size: file.size, refs }
    const writes: Array<[string, Buffer]> = [[ChunkDb.key(ref), chunk], ...this.recordWrites(name, next, Math.floor(idx / PAGE_REFS))]
    const batch = this.db.batch()
    for (const [k, v] of writes) batch.put(k, v)
    await batch.write({ sync: true })
    return { bytes: writes.reduce((s, [k, v]) => s + Buffer.byteLength(k) + v.length, 0), keys: writes.length, file: next }
  }

  /** Reads the whole file in order with one get per chunk. */
  async readEachChunk(file: FileModel): Promise<number> {
    let bytes = 0
    for (let off = 0; off < file.refs.length; off += REF_SIZE) {
      const v = await this.db.get(ChunkDb.key(file.refs.subarray(off, off + REF_SIZE)))
      bytes += v?.length ?? 0
    }
    return bytes
  }

  /** Reads the whole file in order, `readSize` bytes at a time, each read one getMany. */
  async readMany(file: FileModel, readSize: number): Promise<number> {
    const per = Math.max(1, Math.floor(readSize / this.chunkSize))
    const n = file.refs.length / REF_SIZE
    let bytes = 0
    for (let i = 0; i < n; i += per) {
      const keys: string[] = []
      for (let j = i; j < Math.min(n, i + per); j++) keys.push(ChunkDb.key(file.refs.subarray(j * REF_SIZE, (j + 1) * REF_SIZE)))
      for (const v of await this.db.getMany(keys)) bytes += v?.length ?? 0
    }
    return bytes
  }
}
