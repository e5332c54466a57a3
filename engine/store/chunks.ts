import xxhash from 'xxhash-wasm'
import { LRUCache } from 'lru-cache'
import type { Db, Txn } from './db.js'
import { chunkKey } from './keys.js'
import { fsError } from '../errors.js'

/**
 * File data is cut into fixed 64 KiB chunks (page aligned). 64 KiB was chosen by measurement
 * (bench/chunk-size.ts, table in docs/format.md): ingest and reads fall off below it, and above it
 * every small write grows the store two to four times as much for no ingest gain.
 */
export const CHUNK_SIZE = 64 * 1024

/** A chunk ref: 8 bytes of xxh64 of the content, then 1 byte telling apart contents whose hashes collide. */
export const REF_SIZE = 9
/** A hole (all zeroes) is stored as no chunk at all. */
export const HOLE_REF = Buffer.alloc(REF_SIZE, 0xff)
const MAX_COLLISIONS = 254
/** Chunks per read on the pool when reading ahead: small groups, so that several threads wait for the disk at once. */
const PREFETCH_GROUP = 8

/** 8-byte content hash. Injectable so that tests can force collisions. */
export type ChunkHasher = (data: Uint8Array) => Buffer

let defaultHasher: ChunkHasher | undefined
export async function xxh64Hasher(): Promise<ChunkHasher> {
  if (!defaultHasher) {
    const { h64Raw } = await xxhash()
    defaultHasher = (data) => {
      const out = Buffer.allocUnsafe(8)
      out.writeBigUInt64BE(h64Raw(data))
      return out
    }
  }
  return defaultHasher
}

export const isHole = (ref: Uint8Array): boolean => Buffer.compare(ref, HOLE_REF) === 0
export const refHex = (ref: Uint8Array): string => Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength).toString('hex')

/**
 * Content-addressed chunks, shared by every layer and snapshot and cached once per store
 * (the engine's page cache). A put never trusts the hash alone: an existing chunk with the same
 * hash is compared byte for byte, and a different content gets the next collision slot.
 */
export class ChunkStore {
  private readonly cache: LRUCache<string, Buffer>

  constructor(private readonly db: Db, private readonly hasher: ChunkHasher, cacheBytes: number) {
    this.cache = new LRUCache<string, Buffer>({ maxSize: Math.max(cacheBytes, CHUNK_SIZE), sizeCalculation: (b) => b.length || 1 })
  }

  async get(ref: Uint8Array, path?: string): Promise<Buffer> {
    return (await this.getMany([ref], path))[0]
  }

  /**
   * Chunks by ref, from the cache or read from the store. Reads run on the calling thread
   * (`getRawSync`): for data in the OS page cache that is several times cheaper than going through
   * libuv's pool, and the only wait is the disk's, which `prefetch` takes off this thread for streams.
   * `keep: false` (a large sequential read) uses cached chunks but does not add what it reads,
   * so one pass over a big file neither pushes out what other readers use nor makes the process
   * allocate and collect the whole cache's worth of memory.
   */
  async getMany(refs: Uint8Array[], path?: string, keep = true): Promise<Buffer[]> {
    const out: Buffer[] = []
    for (const ref of refs) {
      const hex = refHex(ref)
      let data = this.cache.get(hex)
      if (data === undefined) {
        data = this.db.getRawSync(chunkKey(hex))
        if (data === undefined) throw fsError('EIO', 'read', path, `chunk ${hex} is missing from the store`)
        if (keep) this.cache.set(hex, data)
      }
      out.push(data)
    }
    return out
  }

  /**
   * Starts reading chunks on libuv's pool for a stream that will want them next, so the disk
   * reads run there, several at once, while the serving thread answers what is already read.
   * One promise per ref; a missing chunk rejects only its own promise, and only a caller that
   * uses it sees the error. What is read is not added to the cache (streams do not keep data).
   */
  prefetch(refs: Uint8Array[], path?: string): Promise<Buffer>[] {
    const out = new Array<Promise<Buffer>>(refs.length)
    const unread: number[] = []
    refs.forEach((ref, i) => {
      const cached = this.cache.get(refHex(ref))
      if (cached) out[i] = Promise.resolve(cached)
      else unread.push(i)
    })
    for (let g = 0; g < unread.length; g += PREFETCH_GROUP) {
      const group = unread.slice(g, g + PREFETCH_GROUP)
      const values = this.db.getManyRaw(group.map((i) => chunkKey(refHex(refs[i]))))
      group.forEach((i, j) => {
        const one = values.then((v) => v[j] ?? Promise.reject(fsError('EIO', 'read', path, `chunk ${refHex(refs[i])} is missing from the store`)))
        one.catch(() => undefined) // reported to whoever reads the chunk, not as an unhandled rejection
        out[i] = one
      })
    }
    return out
  }

  /**
   * Stores `data` (deduplicated) within `txn` and returns its ref. The txn keeps `data` itself
   * until it is committed: the caller must not change it.
   */
  async put(data: Buffer, txn: Txn): Promise<Buffer> {
    const hash = this.hasher(data)
    const ref = Buffer.allocUnsafe(REF_SIZE)
    hash.copy(ref, 0, 0, 8)
    for (let slot = 0; slot <= MAX_COLLISIONS; slot++) {
      ref[8] = slot
      const hex = ref.toString('hex')
      const key = chunkKey(hex)
      let existing: Buffer | null | undefined = this.cache.get(hex) ?? txn.pending(key)
      if (existing === undefined) existing = (await this.db.getRaw(key)) ?? null
      if (existing === null) {
        // Not cached until read back from the db: a txn that is never committed must not leave a
        // cached chunk that later puts would dedup against.
        txn.putRaw(key, data)
        return Buffer.from(ref)
      }
      if (existing.equals(data)) return Buffer.from(ref)
    }
    throw fsError('EIO', 'write', undefined, `more than ${MAX_COLLISIONS} distinct chunks share hash ${hash.toString('hex')}`)
  }

  /**
   * `put` of many chunks with one read of the store for all of them (getMany) instead of one per
   * chunk: a flush stores up to hundreds of new chunks, and serial reads cost more than the puts.
   */
  async putMany(datas: Buffer[], txn: Txn): Promise<Buffer[]> {
    const refs = datas.map((d) => {
      const ref = Buffer.alloc(REF_SIZE)
      this.hasher(d).copy(ref, 0, 0, 8)
      return ref
    })
    const keys = refs.map((r) => chunkKey(refHex(r)))
    // Taken before the read below: a txn this one follows may land and forget its values meanwhile.
    const known = keys.map((k, i) => this.cache.get(refHex(refs[i])) ?? txn.pending(k))
    const unknown = keys.flatMap((_, i) => (known[i] === undefined ? [i] : []))
    const got = await this.db.getManyRaw(unknown.map((i) => keys[i]))
    const stored = new Map(unknown.map((i, j) => [i, got[j]]))
    const out: Buffer[] = []
    for (let i = 0; i < datas.length; i++) {
      // the txn first: an equal chunk earlier in this call is already in it
      const existing = this.cache.get(refHex(refs[i])) ?? txn.pending(keys[i]) ?? known[i] ?? stored.get(i) ?? null
      if (existing === null) {
        txn.putRaw(keys[i], datas[i])
        out.push(refs[i])
      } else if (existing.equals(datas[i])) {
        out.push(refs[i])
      } else {
        out.push(await this.put(datas[i], txn)) // slot 0 holds other content: find the next free slot
      }
    }
    return out
  }

  /** Bytes of chunk data in the cache. */
  get cachedBytes(): number {
    return this.cache.calculatedSize
  }

  /** Drops a chunk from the cache (after gc removed it). */
  forget(hex: string): void {
    this.cache.delete(hex)
  }

  hash(data: Uint8Array): Buffer {
    return this.hasher(data)
  }
}
