import type { Txn } from './db.js'
import { CHUNK_SIZE, HOLE_REF, REF_SIZE, isHole, ofSnapshot, type ChunkOwner, type ChunkStore } from './chunks.js'
import { fsError } from '../errors.js'
import type { InodeRecord } from './records.js'
import { ReadStream, SLACK } from './readstream.js'
import type { FileData } from '../overlay/data.js'
import type { UpperTxn } from '../overlay/node.js'

/** Files up to this size keep their bytes in the inode record. */
export const INLINE_MAX = 4096
/** Chunk refs held directly in a record; longer lists go into pages of this many refs, each a chunk. */
export const PAGE_REFS = 1024

const ZERO = Buffer.alloc(CHUNK_SIZE)
/** Read-ahead chunks this far behind a stream are ones it skipped. */
const STALE_AHEAD = SLACK / CHUNK_SIZE
const isZero = (b: Buffer): boolean => b.equals(ZERO.subarray(0, b.length))

export type DataFields = Pick<InodeRecord, 'size' | 'inline' | 'inlineHash' | 'chunks' | 'pages'>

/** The chunk refs of a file's data, resolving pages. */
export async function loadRefs(rec: DataFields, chunks: ChunkStore, owner: ChunkOwner = {}): Promise<Buffer> {
  if (rec.chunks) return Buffer.from(rec.chunks)
  if (!rec.pages) return Buffer.alloc(0)
  const pageRefs: Buffer[] = []
  for (let off = 0; off < rec.pages.length; off += REF_SIZE) pageRefs.push(rec.pages.subarray(off, off + REF_SIZE))
  return Buffer.concat(await chunks.getMany(pageRefs, owner))
}

/**
 * Whether a record's inline content matches the checksum written with it: true or false, or
 * undefined for a record written before format 3, which has none.
 */
export function inlineIntact(rec: DataFields, chunks: ChunkStore): boolean | undefined {
  if (!rec.inline || rec.inline.length === 0) return true
  if (!rec.inlineHash) return undefined
  return chunks.hash(rec.inline).equals(rec.inlineHash)
}

/** The inline content of a record, or EIO naming the snapshot and path when it fails its checksum. */
function checkedInline(rec: DataFields, chunks: ChunkStore, owner: ChunkOwner): Buffer | undefined {
  if (inlineIntact(rec, chunks) === false) {
    throw fsError('EIO', 'read', owner.path, `inline content${ofSnapshot(owner.snapshot)} is damaged: its bytes do not match their checksum`)
  }
  return rec.inline
}

/**
 * The content of one regular file while it is open or being written: chunk refs plus chunks
 * changed in memory. Writes touch only the chunks they cover, so copy-up of a huge file followed
 * by a small write stores one new chunk (and one page of refs).
 */
export class FileContent implements FileData {
  size: number
  private refs: Buffer
  private readonly dirty = new Map<number, Buffer>()
  private changed = false
  private readonly stream = new ReadStream()
  /** Chunks of a sequential reader being read ahead on the pool, by index (never a dirty chunk). */
  private readonly ahead = new Map<number, Promise<Buffer>>()

  private constructor(size: number, refs: Buffer, private readonly chunks: ChunkStore, private readonly owner: ChunkOwner = {}) {
    this.size = size
    this.refs = refs
  }

  /** `owner` names the file in the errors of damaged or missing data. */
  static async load(rec: DataFields, chunks: ChunkStore, owner: ChunkOwner = {}): Promise<FileContent> {
    const inline = checkedInline(rec, chunks, owner)
    const fc = new FileContent(rec.size, await loadRefs(rec, chunks, owner), chunks, owner)
    if (inline && inline.length > 0) fc.dirty.set(0, Buffer.from(inline))
    return fc
  }

  static empty(chunks: ChunkStore): FileContent {
    return new FileContent(0, Buffer.alloc(0), chunks)
  }

  get isChanged(): boolean {
    return this.changed
  }
  get dirtyBytes(): number {
    let n = 0
    for (const b of this.dirty.values()) n += b.length
    return n
  }

  private refAt(idx: number): Buffer | undefined {
    const off = idx * REF_SIZE
    return off + REF_SIZE <= this.refs.length ? this.refs.subarray(off, off + REF_SIZE) : undefined
  }

  /** Chunk `idx` as currently seen; may be shorter than CHUNK_SIZE (the rest reads as zeroes). */
  private async chunk(idx: number): Promise<Buffer> {
    const d = this.dirty.get(idx)
    if (d) return d
    const ref = this.refAt(idx)
    if (!ref || isHole(ref)) return ZERO.subarray(0, 0)
    return this.chunks.get(ref, this.owner)
  }

  async read(target: Buffer, targetOffset: number, length: number, position: number): Promise<number> {
    let done = 0
    for (const piece of await this.slices(length, position)) {
      piece.copy(target, targetOffset + done)
      done += piece.length
    }
    return done
  }

  /**
   * The bytes at [position, position + length) (up to the end of the file) as views of the
   * chunks that hold them, in order: nothing is copied. The views stay valid: writes put new
   * buffers in place of the chunks they change, and stored chunks never change.
   */
  async slices(length: number, position: number): Promise<Buffer[]> {
    const end = Math.min(this.size, position + length)
    if (end <= position) return []
    const first = Math.floor(position / CHUNK_SIZE)
    const last = Math.floor((end - 1) / CHUNK_SIZE)
    const plan = this.stream.plan(position, end)
    if (!plan.sequential) this.ahead.clear()
    const storedAt: number[] = []
    const refs: Buffer[] = []
    const readAhead: Promise<Buffer>[] = []
    const readAheadAt: number[] = []
    for (let i = first; i <= last; i++) {
      if (this.dirty.has(i)) continue
      const pending = this.ahead.get(i)
      if (pending) {
        this.ahead.delete(i)
        readAheadAt.push(i)
        readAhead.push(pending)
        continue
      }
      const r = this.refAt(i)
      if (r && !isHole(r)) {
        storedAt.push(i)
        refs.push(r)
      }
    }
    const fetched = await this.chunks.getMany(refs, this.owner, plan.keep)
    if (plan.sequential) this.readAheadFrom(last + 1)
    const byChunk = new Map<number, Buffer>()
    storedAt.forEach((i, j) => byChunk.set(i, fetched[j]))
    if (readAhead.length > 0) (await Promise.all(readAhead)).forEach((b, j) => byChunk.set(readAheadAt[j], b))
    const out: Buffer[] = []
    for (let i = first; i <= last; i++) {
      const data = this.dirty.get(i) ?? byChunk.get(i) ?? ZERO.subarray(0, 0)
      const chunkStart = i * CHUNK_SIZE
      const from = Math.max(position, chunkStart) - chunkStart
      const to = Math.min(end, chunkStart + CHUNK_SIZE) - chunkStart
      // a chunk stored short (or a hole) reads as zeroes past its end
      const avail = Math.max(0, Math.min(to, data.length) - from)
      if (avail > 0) out.push(data.subarray(from, from + avail))
      if (to - from > avail) out.push(ZERO.subarray(0, to - from - avail))
    }
    return out
  }

  private readAheadFrom(next: number): void {
    // what the stream skipped will not be read: drop it rather than hold it
    for (const i of this.ahead.keys()) if (i < next - STALE_AHEAD) this.ahead.delete(i)
    const range = this.stream.after(next, Math.ceil(this.size / CHUNK_SIZE))
    if (!range) return
    const at: number[] = []
    const refs: Buffer[] = []
    for (let i = range[0]; i < range[1]; i++) {
      const r = this.dirty.has(i) || this.ahead.has(i) ? undefined : this.refAt(i)
      if (r && !isHole(r)) {
        at.push(i)
        refs.push(r)
      }
    }
    this.chunks.prefetch(refs, this.owner).forEach((p, j) => this.ahead.set(at[j], p))
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    if (data.length === 0) return
    this.ahead.clear()
    const end = position + data.length
    let src = 0
    for (let i = Math.floor(position / CHUNK_SIZE); i * CHUNK_SIZE < end; i++) {
      const chunkStart = i * CHUNK_SIZE
      const from = Math.max(position, chunkStart) - chunkStart
      const to = Math.min(end, chunkStart + CHUNK_SIZE) - chunkStart
      const keepTo = Math.min(CHUNK_SIZE, Math.max(0, this.size - chunkStart))
      let buf: Buffer
      if (from === 0 && to >= keepTo) {
        buf = Buffer.allocUnsafe(to) // every byte of it is written below
      } else {
        const old = await this.chunk(i)
        buf = Buffer.alloc(Math.max(to, Math.min(old.length, keepTo)))
        old.copy(buf, 0, 0, Math.min(old.length, keepTo))
      }
      buf.set(data.subarray(src, src + (to - from)), from)
      src += to - from
      this.dirty.set(i, buf)
    }
    if (end > this.size) this.extendTo(end)
    this.changed = true
  }

  async truncate(size: number): Promise<void> {
    if (size === this.size) return
    this.ahead.clear()
    if (size > this.size) {
      this.extendTo(size)
    } else {
      const keep = Math.ceil(size / CHUNK_SIZE)
      for (const idx of [...this.dirty.keys()]) if (idx >= keep) this.dirty.delete(idx)
      this.refs = this.refs.subarray(0, Math.min(this.refs.length, keep * REF_SIZE))
      const tail = size % CHUNK_SIZE
      if (tail !== 0) {
        const last = keep - 1
        const old = await this.chunk(last)
        if (old.length > tail) this.dirty.set(last, Buffer.from(old.subarray(0, tail)))
      }
      this.size = size
    }
    this.changed = true
  }

  private extendTo(size: number): void {
    // The old last chunk may be stored short; the bytes past its end already read as zeroes.
    const need = Math.ceil(size / CHUNK_SIZE) * REF_SIZE
    if (this.refs.length < need) {
      const grown = Buffer.alloc(need, 0xff)
      this.refs.copy(grown)
      this.refs = grown
    }
    this.size = size
  }

  async release(): Promise<void> {}
  /** Stored chunks are durable with the batch that wrote them. */
  async sync(): Promise<void> {}

  /**
   * Stores the changed chunks within `txn` (a store transaction) and returns the data fields of
   * the inode record; the batch's own commit makes it durable.
   */
  async flush(upperTxn: UpperTxn, _durable = false): Promise<DataFields> {
    const txn = upperTxn as Txn
    if (this.size <= INLINE_MAX) {
      const inline = Buffer.alloc(this.size)
      await this.read(inline, 0, this.size, 0)
      this.refs = Buffer.alloc(0)
      this.dirty.clear()
      if (this.size > 0) this.dirty.set(0, inline)
      this.changed = false
      // the checksum lets a read tell bytes damaged on disk from the content (format 3)
      const inlineHash = inline.length > 0 ? this.chunks.hash(inline) : undefined
      return { size: this.size, inline, inlineHash, chunks: undefined, pages: undefined }
    }
    const n = Math.ceil(this.size / CHUNK_SIZE)
    if (this.refs.length !== n * REF_SIZE) {
      const r = Buffer.alloc(n * REF_SIZE, 0xff)
      this.refs.copy(r, 0, 0, Math.min(r.length, this.refs.length))
      this.refs = r
    }
    const toStore: number[] = []
    const bodies: Buffer[] = []
    for (const [idx, buf] of this.dirty) {
      if (idx >= n) continue
      const len = Math.min(CHUNK_SIZE, this.size - idx * CHUNK_SIZE)
      const body = buf.length > len ? buf.subarray(0, len) : buf
      if (isZero(body)) {
        HOLE_REF.copy(this.refs, idx * REF_SIZE)
      } else {
        toStore.push(idx)
        bodies.push(body)
      }
    }
    const stored = await this.chunks.putMany(bodies, txn)
    toStore.forEach((idx, j) => stored[j].copy(this.refs, idx * REF_SIZE))
    this.dirty.clear()
    this.changed = false
    if (n <= PAGE_REFS) return { size: this.size, inline: undefined, inlineHash: undefined, chunks: Buffer.from(this.refs), pages: undefined }
    const pageBodies: Buffer[] = []
    // copies: the store keeps what it is given, and later writes change `refs` in place
    for (let off = 0; off < this.refs.length; off += PAGE_REFS * REF_SIZE) pageBodies.push(Buffer.from(this.refs.subarray(off, off + PAGE_REFS * REF_SIZE)))
    const pages = await this.chunks.putMany(pageBodies, txn)
    return { size: this.size, inline: undefined, inlineHash: undefined, chunks: undefined, pages: Buffer.concat(pages) }
  }
}

/** Every chunk ref a record's data uses, pages included (for gc and fsck). */
export async function referencedChunks(rec: DataFields, chunks: ChunkStore): Promise<Buffer[]> {
  const out: Buffer[] = []
  if (rec.pages) for (let off = 0; off < rec.pages.length; off += REF_SIZE) out.push(rec.pages.subarray(off, off + REF_SIZE))
  const refs = await loadRefs(rec, chunks)
  for (let off = 0; off < refs.length; off += REF_SIZE) {
    const r = refs.subarray(off, off + REF_SIZE)
    if (!isHole(r)) out.push(r)
  }
  return out
}
