import { LRUCache } from 'lru-cache'

/** About this many bytes of decoded records (a few tens of thousands of inodes and entries). */
export const DECODED_CACHE_BYTES = 32 * 1024 * 1024

/** What `DecodedCache.get` answers for a key it does not hold. */
export const NOT_CACHED: unique symbol = Symbol('not cached')

/** A key that holds no record: lookups of absent names are as frequent as those of present ones. */
const ABSENT = Symbol('absent')

/**
 * Decoded records of keys that writes may change (an active layer's entries and inodes), by
 * key: a path walk reads the same few records for every operation. `Db` forgets a key as soon as
 * a write of it is queued, so an entry always matches what a read of the key returns; only this
 * process writes the store, so nothing else can make an entry stale.
 */
export class DecodedCache {
  private readonly lru = new LRUCache<string, object | typeof ABSENT>({ maxSize: DECODED_CACHE_BYTES })

  /** The cached record, undefined when the key is known to hold none, NOT_CACHED otherwise. */
  get(key: string): unknown {
    const v = this.lru.get(key)
    if (v === undefined) return NOT_CACHED
    return v === ABSENT ? undefined : v
  }

  /**
   * Keeps `value` (undefined: the key holds no record), decoded from `rawBytes` bytes. A decoded
   * record's buffers are views of the stored value, which they keep alive: the size counts both.
   */
  set(key: string, value: object | undefined, rawBytes: number): void {
    this.lru.set(key, value ?? ABSENT, { size: 200 + 2 * key.length + 2 * rawBytes })
  }

  forget(key: string): void {
    this.lru.delete(key)
  }

  clear(): void {
    this.lru.clear()
  }
}
