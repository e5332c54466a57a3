import { LRUCache } from 'lru-cache'
import { compareKeys, type BatchOp } from './unlanded.js'

/** About this many cached rows (a directory entry is one row). */
export const SCAN_CACHE_ROWS = 200_000

/** A prefix's rows by key; `sorted` is their scan order, made again after a change. */
interface Rows {
  byKey: Map<string, Buffer>
  sorted?: Array<[string, Buffer]>
}

/**
 * The rows of small prefixes that are listed again and again while they change: the entries of
 * an active layer's directories. A LevelDB scan costs three trips through libuv's pool (open,
 * next, close), where a directory listing from memory costs nothing; `ls`, `find` and `rm -r`
 * list each directory they pass.
 *
 * `Db` hands every queued write to `apply`, which updates a cached prefix in place, so a listing
 * always matches what a scan returns at that moment. A cached prefix holds the keys whose last
 * '/' ends it (an entry name never holds a '/'), so the prefix of a key is found at once.
 */
export class ScanCache {
  private readonly lru = new LRUCache<string, Rows>({ maxSize: SCAN_CACHE_ROWS, sizeCalculation: (r) => r.byKey.size + 1 })
  /** Counts queued writes: a scan raced by one is not kept (it may have missed the write). */
  private writes = 0

  /** Where a scan starts: hand it to `fill` with the scan's rows. */
  get generation(): number {
    return this.writes
  }

  /** The rows of `prefix` in scan order, or undefined when they are not kept. */
  get(prefix: string): ReadonlyArray<[string, Buffer]> | undefined {
    const rows = this.lru.get(prefix)
    if (!rows) return undefined
    rows.sorted ??= [...rows.byKey].sort((a, b) => compareKeys(a[0], b[0]))
    return rows.sorted
  }

  /** Keeps what a scan of `prefix`, started at `generation`, found, unless a write came in between. */
  fill(prefix: string, rows: Array<[string, Buffer]>, generation: number): void {
    if (generation !== this.writes) return
    this.lru.set(prefix, { byKey: new Map(rows), sorted: rows })
  }

  /** `prefix` is known to hold nothing (the entries of a directory just made). */
  empty(prefix: string): void {
    this.lru.set(prefix, { byKey: new Map(), sorted: [] })
  }

  /** A write was queued: reads see it from now on, and so does the cached prefix it falls in. */
  apply(op: BatchOp): void {
    this.writes++
    const prefix = op.key.slice(0, op.key.lastIndexOf('/') + 1)
    const rows = this.lru.peek(prefix)
    if (!rows) return
    rows.sorted = undefined
    if (op.type === 'del') {
      rows.byKey.delete(op.key)
      return
    }
    const added = !rows.byKey.has(op.key)
    rows.byKey.set(op.key, op.value)
    // counted again for the LRU's bound when it grew
    if (added) this.lru.set(prefix, rows)
  }

  clear(): void {
    this.lru.clear()
    this.writes++
  }
}
