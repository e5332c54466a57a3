import { LRUCache } from 'lru-cache'
import type { InodeRecord } from './records.js'
import type { IndexLowerNode, IndexNodeRecord } from './mergeindex.js'
import { inodeKey, nodeKey } from './keys.js'

/** A directory of a committed snapshot as IndexTree lists it. */
export type IndexListing = ReadonlyArray<readonly [string, IndexLowerNode]>

/** Index nodes kept decoded (as many as before this cache held records too). */
const MAX_NODES = 20000
/** Inode records and listings: about this many bytes, whatever the number of snapshots. */
export const RECORD_CACHE_BYTES = 64 * 1024 * 1024

/**
 * What IndexTree reads of committed snapshots, decoded, one cache for a whole Store: index nodes by
 * id, inode records of sealed layers, and directory listings by index node. None of it can go
 * stale: an index node and a sealed layer's records never change, and node and layer ids come from
 * counters that never hand out an id twice (counters.ts), so the key of a record that gc or
 * remove deleted is never asked for again; the entry just ages out.
 *
 * The node part keeps the LRUCache calls (get, set, delete, clear) that gc and fsck use.
 */
export class RecordCache {
  private readonly nodes = new LRUCache<string, IndexNodeRecord>({ max: MAX_NODES })
  private readonly derived: LRUCache<string, InodeRecord | IndexListing>

  constructor(maxBytes = RECORD_CACHE_BYTES) {
    this.derived = new LRUCache<string, InodeRecord | IndexListing>({ maxSize: maxBytes, sizeCalculation: (v) => (Array.isArray(v) ? listingBytes(v as IndexListing) : recordBytes(v as InodeRecord)) })
  }

  get(id: string): IndexNodeRecord | undefined {
    return this.nodes.get(id)
  }
  set(id: string, rec: IndexNodeRecord): this {
    this.nodes.set(id, rec)
    return this
  }
  /** Forgets index node `id` and the listing made from it. */
  delete(id: string): boolean {
    this.derived.delete(nodeKey(id))
    return this.nodes.delete(id)
  }
  clear(): void {
    this.nodes.clear()
    this.derived.clear()
  }

  inode(layer: string, ino: number): InodeRecord | undefined {
    return this.derived.get(inodeKey(layer, ino)) as InodeRecord | undefined
  }
  /** Keeps `rec` (frozen: every reader shares it) and returns it. */
  setInode(layer: string, ino: number, rec: InodeRecord): InodeRecord {
    const kept = freezeRecord(rec)
    this.derived.set(inodeKey(layer, ino), kept)
    return kept
  }

  listing(node: string): IndexListing | undefined {
    return this.derived.get(nodeKey(node)) as IndexListing | undefined
  }
  setListing(node: string, list: Array<[string, IndexLowerNode]>): IndexListing {
    for (const e of list) {
      Object.freeze(e[1])
      Object.freeze(e)
    }
    const kept = Object.freeze(list)
    this.derived.set(nodeKey(node), kept)
    return kept
  }

  /** Entries held and their estimated bytes (tests and benchmarks). */
  get stats(): { nodes: number; records: number; bytes: number } {
    return { nodes: this.nodes.size, records: this.derived.size, bytes: this.derived.calculatedSize }
  }
}

/**
 * Freezes a record that several readers will share, so that a reader changing it in place fails
 * at once instead of changing what every later reader sees. Buffers cannot be frozen; nothing
 * writes into a record's buffers (writers copy them: filedata.ts).
 */
export function freezeRecord(rec: InodeRecord): InodeRecord {
  if (rec.xattrs) Object.freeze(rec.xattrs)
  Object.freeze(rec.atime)
  Object.freeze(rec.mtime)
  Object.freeze(rec.ctime)
  if (rec.origin) Object.freeze(rec.origin)
  return Object.freeze(rec)
}

/**
 * Rough heap bytes of a decoded record, on the high side: the object with its times (about 330
 * bytes measured), and each buffer about 300 bytes of its own plus twice its length, as a decoded
 * buffer is a view that keeps the whole stored value alive.
 */
export function recordBytes(rec: InodeRecord): number {
  const buf = (b: Uint8Array | undefined): number => (b ? 300 + 2 * b.length : 0)
  let n = 330 + buf(rec.inline) + buf(rec.chunks) + buf(rec.pages) + (rec.origin ? 150 : 0)
  if (rec.xattrs) for (const [k, v] of Object.entries(rec.xattrs)) n += 2 * k.length + buf(v)
  n += 2 * ((rec.target?.length ?? 0) + (rec.redirect?.length ?? 0) + (rec.hostPath?.length ?? 0) + (rec.copiedFrom?.length ?? 0))
  return n
}

function listingBytes(list: IndexListing): number {
  let n = 64
  for (const [name] of list) n += 120 + 2 * name.length
  return n
}
