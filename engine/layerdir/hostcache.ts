import { LRUCache } from 'lru-cache'

/** What the directory layers of a process keep of the host: about this many bytes in all. */
export const HOST_CACHE_BYTES = 64 * 1024 * 1024

/** A value kept with its estimated size (a new box per set, so the LRU counts a changed size). */
interface Kept {
  v: object
  bytes: number
}

const shared = new LRUCache<string, Kept>({ maxSize: HOST_CACHE_BYTES, sizeCalculation: (k, key) => k.bytes + 2 * key.length + 96 })
let nextSerial = 0

/**
 * What one directory layer read of the host: for a read-only layer its dirs' names and its
 * records, for the life of the layer object; for an upper only what it checks before each use
 * (see DirLayer.attrsOf). Sound only while nobody changes the dir, which is the kernel's
 * own rule for the lower dirs of a mounted overlay. Every layer's entries sit in one LRU bounded
 * in bytes, under a number no other layer object gets, so a layer opened again after the host
 * changed never sees what an earlier one read.
 */
export class HostReadCache {
  private readonly prefix = `${(nextSerial++).toString(36)}\0`

  get<T extends object>(key: string): T | undefined {
    return shared.get(this.prefix + key)?.v as T | undefined
  }

  delete(key: string): void {
    shared.delete(this.prefix + key)
  }

  set<T extends object>(key: string, v: T, bytes: number): T {
    shared.set(this.prefix + key, { v, bytes })
    return v
  }
}
