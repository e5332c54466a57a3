import { xxh64 } from '@node-rs/xxhash'
import { LRUCache } from 'lru-cache'
import type { Db, Txn } from './db.js'
import { chunkKey, packedKey } from './keys.js'
import { PackGoneError, decodePointer } from './packs.js'
import { FsError, fsError } from '../errors.js'

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
/** Chunks kept in LevelDB, per read on the pool when reading ahead: small groups, so that several threads wait for the disk at once. */
const PREFETCH_GROUP = 8
/**
 * A put of at most this many chunks not cached (a small file's flush) looks them up on the
 * calling thread, as reads do: a trip through libuv's pool cost more than the lookups. More go
 * to the pool in one getMany, so that a large flush does not hold the thread while the disk seeks.
 */
const SYNC_LOOKUPS = 16
/** Largest read of adjacent packed chunks when reading ahead. */
const PREFETCH_SPAN = 1024 * 1024

/** 8-byte content hash. Injectable so that tests can force collisions. */
export type ChunkHasher = (data: Uint8Array) => Buffer

let defaultHasher: ChunkHasher | undefined
export async function xxh64Hasher(): Promise<ChunkHasher> {
  if (!defaultHasher) {
    defaultHasher = (data) => {
      const out = Buffer.allocUnsafe(8)
      out.writeBigUInt64BE(xxh64(data))
      return out
    }
  }
  return defaultHasher
}

/** Hex digits of a chunk id that are its content hash (the rest is the collision slot). */
const HASH_HEX = 16

/** Whose data a read is for: named in the error when a chunk is missing or damaged. */
export interface ChunkOwner {
  /** The file's path in its snapshot. */
  path?: string
  /** The snapshot the file was read through. */
  snapshot?: string
}

/** ` of snapshot 'NAME'` where the snapshot is known: how errors about damaged data name it. */
export const ofSnapshot = (snapshot: string | undefined): string => (snapshot === undefined ? '' : ` of snapshot '${snapshot}'`)

/** EIO naming the chunk, and the snapshot and path it was read for. */
export function chunkError(hex: string, owner: ChunkOwner, what: string): FsError {
  return fsError('EIO', 'read', owner.path, `chunk ${hex}${ofSnapshot(owner.snapshot)} ${what}`)
}

export const isHole = (ref: Uint8Array): boolean => Buffer.compare(ref, HOLE_REF) === 0
export const refHex = (ref: Uint8Array): string => Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength).toString('hex')

/**
 * Content-addressed chunks, shared by every layer and snapshot and cached once per store
 * (the engine's page cache). A put never trusts the hash alone: an existing chunk with the same
 * hash is compared byte for byte, and a different content gets the next collision slot.
 *
 * Every body read for a reader is hashed and compared with its id before it is cached or
 * returned: bytes damaged on disk (a pack, a LevelDB table) fail with EIO, never reach a reader
 * as good data. A put needs no such check: it compares the stored bytes with its own.
 */
export class ChunkStore {
  private readonly cache: LRUCache<string, Buffer>

  constructor(private readonly db: Db, private readonly hasher: ChunkHasher, cacheBytes: number) {
    this.cache = new LRUCache<string, Buffer>({ maxSize: Math.max(cacheBytes, CHUNK_SIZE), sizeCalculation: (b) => b.length || 1 })
  }

  async get(ref: Uint8Array, owner: ChunkOwner = {}): Promise<Buffer> {
    return (await this.getMany([ref], owner))[0]
  }

  /**
   * Chunks by ref, from the cache or read from the store. Reads run on the calling thread
   * (`getRawSync`): for data in the OS page cache that is several times cheaper than going through
   * libuv's pool, and the only wait is the disk's, which `prefetch` takes off this thread for streams.
   * `keep: false` (a large sequential read) uses cached chunks but does not add what it reads,
   * so one pass over a big file neither pushes out what other readers use nor makes the process
   * allocate and collect the whole cache's worth of memory.
   */
  async getMany(refs: Uint8Array[], owner: ChunkOwner = {}, keep = true): Promise<Buffer[]> {
    const out: Buffer[] = []
    for (const ref of refs) {
      const hex = refHex(ref)
      let data = this.cache.get(hex)
      if (data === undefined) {
        data = this.readStoredSync(hex, owner)
        if (data === undefined) throw chunkError(hex, owner, 'is missing from the store')
        this.verify(hex, data, owner)
        if (keep) this.cache.set(hex, data)
      }
      out.push(data)
    }
    return out
  }

  /**
   * Throws EIO unless `body` hashes to chunk id `hex` (its first 8 bytes; the last is the
   * collision slot, which any content of that hash may hold).
   */
  private verify(hex: string, body: Buffer, owner: ChunkOwner): void {
    if (this.hasher(body).toString('hex') !== hex.slice(0, HASH_HEX)) throw chunkError(hex, owner, 'is damaged: its bytes do not match its hash')
  }

  /** A chunk's body as stored (pack or LevelDB), read on the calling thread; undefined if it is not stored. */
  private readStoredSync(hex: string, owner: ChunkOwner): Buffer | undefined {
    for (let attempt = 0; ; attempt++) {
      try {
        const where = this.db.getRawSync(packedKey(hex))
        if (where === undefined) return this.db.getRawSync(chunkKey(hex))
        return this.db.packs.readSync(decodePointer(where))
      } catch (err) {
        // gc moved the chunk to another pack between the lookup and the read
        if (err instanceof PackGoneError && attempt === 0) continue
        // a LevelDB table that fails to decode lands here too
        throw chunkError(hex, owner, `cannot be read: ${(err as Error).message}`)
      }
    }
  }

  /** A chunk's body as stored, read on libuv's pool; undefined if it is not stored. Not verified (see the class). */
  readStored(hex: string, owner: ChunkOwner = {}): Promise<Buffer | undefined> {
    return this.lookUpAndRead(hex, owner, true)
  }

  private async lookUpAndRead(hex: string, owner: ChunkOwner, retry: boolean): Promise<Buffer | undefined> {
    const [where, inline] = await this.db.getManyRaw([packedKey(hex), chunkKey(hex)])
    return where === undefined ? inline : this.readPacked(hex, where, owner, retry)
  }

  /** The body a `P/` pointer names, read on libuv's pool. */
  private async readPacked(hex: string, where: Buffer, owner: ChunkOwner, retry = true): Promise<Buffer | undefined> {
    const p = decodePointer(where)
    try {
      return await this.db.packs.readSpan(p.pack, p.offset, p.length)
    } catch (err) {
      // gc moved the chunk to another pack between the lookup and the read: look it up again, once
      if (err instanceof PackGoneError && retry) return this.lookUpAndRead(hex, owner, false)
      throw chunkError(hex, owner, `cannot be read: ${(err as Error).message}`)
    }
  }

  /**
   * Starts reading chunks on libuv's pool for a stream that will want them next, so the disk
   * reads run there, several at once, while the serving thread answers what is already read.
   * One promise per ref; a missing chunk rejects only its own promise, and only a caller that
   * uses it sees the error. What is read is not added to the cache (streams do not keep data).
   */
  prefetch(refs: Uint8Array[], owner: ChunkOwner = {}): Promise<Buffer>[] {
    const out = new Array<Promise<Buffer>>(refs.length)
    const unread: { i: number; hex: string; resolve: (b: Buffer) => void; reject: (e: unknown) => void }[] = []
    /** Resolves with `body` once it matches its hash. */
    const deliver = (u: (typeof unread)[number], body: Buffer): void => {
      try {
        this.verify(u.hex, body, owner)
        u.resolve(body)
      } catch (err) {
        u.reject(err)
      }
    }
    refs.forEach((ref, i) => {
      const hex = refHex(ref)
      const cached = this.cache.get(hex)
      if (cached) {
        out[i] = Promise.resolve(cached)
        return
      }
      out[i] = new Promise<Buffer>((resolve, reject) => unread.push({ i, hex, resolve, reject }))
      out[i].catch(() => undefined) // reported to whoever reads the chunk, not as an unhandled rejection
    })
    if (unread.length === 0) return out
    const fail = (u: (typeof unread)[number], err: unknown): void =>
      u.reject(err instanceof FsError ? err : chunkError(u.hex, owner, `cannot be read: ${(err as Error).message}`))
    const missing = (u: (typeof unread)[number]): void => u.reject(chunkError(u.hex, owner, 'is missing from the store'))
    this.db.getManyRaw(unread.map((u) => packedKey(u.hex))).then((found) => {
      for (let j = 0; j < unread.length;) {
        if (found[j] === undefined) {
          // kept in LevelDB: a few per read, several reads at once
          let k = j + 1
          while (k < unread.length && k - j < PREFETCH_GROUP && found[k] === undefined) k++
          const group = unread.slice(j, k)
          this.db.getManyRaw(group.map((u) => chunkKey(u.hex))).then(
            (bodies) => group.forEach((u, n) => (bodies[n] ? deliver(u, bodies[n]!) : missing(u))),
            (err: unknown) => group.forEach((u) => fail(u, err)),
          )
          j = k
          continue
        }
        // packed: chunks that follow each other in one pack are read with one read
        const first = decodePointer(found[j]!)
        const span = [{ u: unread[j], at: 0, length: first.length }]
        let end = first.offset + first.length
        let k = j + 1
        for (; k < unread.length && found[k] !== undefined && end - first.offset < PREFETCH_SPAN; k++) {
          const p = decodePointer(found[k]!)
          if (p.pack !== first.pack || p.offset !== end) break
          span.push({ u: unread[k], at: end - first.offset, length: p.length })
          end += p.length
        }
        this.db.packs.readSpan(first.pack, first.offset, end - first.offset).then(
          (buf) => span.forEach((m) => deliver(m.u, buf.subarray(m.at, m.at + m.length))),
          (err: unknown) => span.forEach((m) => {
            if (!(err instanceof PackGoneError)) return fail(m.u, err)
            // gc moved it meanwhile: look it up again
            this.readStored(m.u.hex, owner).then((b) => (b ? deliver(m.u, b) : missing(m.u)), (e: unknown) => fail(m.u, e))
          }),
        )
        j = k
      }
    }, (err: unknown) => unread.forEach((u) => fail(u, err)))
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
      let existing: Buffer | null | undefined = this.cache.get(hex) ?? txn.pendingChunk(hex)
      if (existing === undefined) existing = (await this.readStored(hex)) ?? null
      if (existing === null) {
        // Not cached until read back from the db: a txn that is never committed must not leave a
        // cached chunk that later puts would dedup against.
        txn.putChunk(hex, data)
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
    const ids = refs.map(refHex)
    // Taken before the read below: a txn this one follows may land and forget its values meanwhile.
    const known = ids.map((id) => this.cache.get(id) ?? txn.pendingChunk(id))
    const unknown = ids.flatMap((_, i) => (known[i] === undefined ? [i] : []))
    const got = await this.readManyStored(unknown.map((i) => ids[i]))
    const stored = new Map(unknown.map((i, j) => [i, got[j]]))
    const out: Buffer[] = []
    for (let i = 0; i < datas.length; i++) {
      // the txn first: an equal chunk earlier in this call is already in it
      const existing = this.cache.get(ids[i]) ?? txn.pendingChunk(ids[i]) ?? known[i] ?? stored.get(i) ?? null
      if (existing === null) {
        txn.putChunk(ids[i], datas[i])
        out.push(refs[i])
      } else if (existing.equals(datas[i])) {
        out.push(refs[i])
      } else {
        out.push(await this.put(datas[i], txn)) // slot 0 holds other content: find the next free slot
      }
    }
    return out
  }

  /** `readStored` of many chunks, with one lookup in LevelDB for all of them. */
  private async readManyStored(ids: string[]): Promise<(Buffer | undefined)[]> {
    if (ids.length === 0) return []
    if (ids.length <= SYNC_LOOKUPS) return ids.map((id) => this.readStoredSync(id, {}))
    const found = await this.db.getManyRaw([...ids.map(packedKey), ...ids.map(chunkKey)])
    return Promise.all(ids.map((id, i) => (found[i] === undefined ? found[ids.length + i] : this.readPacked(id, found[i]!, {}))))
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
