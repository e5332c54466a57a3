import { mkdirSync, readFileSync, writeFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Level as LevelDB } from 'level'
import { decode, encode } from './codec.js'
import { FORMAT_KEY, chunkKey, packedKey, prefixRange } from './keys.js'
import { Packs, encodePointer, type PackPointer } from './packs.js'
import { checkBeforeOpen, refuseUnindexedPacks } from './opencheck.js'
import { Unlanded, lastOpPerKey, mergeQueued, type BatchOp } from './unlanded.js'
import { DecodedCache, NOT_CACHED } from './decodedcache.js'
import { ScanCache } from './scancache.js'
import { FsError, StoreError, isCode } from '../errors.js'
import { RESERVE_BYTES, freeBytes, isNoSpace, keepReserve, logBytes, noSpaceError, reopenBytes, withReserve } from './space.js'

/**
 * 2: chunk bodies may live in pack files (`P/` keys). 3: inline contents are written with a
 * checksum (`inlineHash`), which older versions would leave stale. A version 1 or 2 store is
 * read as is and marked 3 on open; its inline contents without a checksum read unverified.
 */
export const FORMAT_VERSION = 3
const UPGRADABLE = [1, 2]
/**
 * A batch whose new chunks add up to this much writes them to a pack file; a smaller one keeps
 * them in LevelDB. A pack write costs an fdatasync of its own before the batch, which a
 * 4 KiB write into a big file must not pay, and bulk data (an import, a large write) is what
 * is read back in long sweeps.
 */
export const PACK_MIN_BYTES = 1024 * 1024
const HOLDER_FILE = 'HOLDER'
/** A log larger than this is written out into a table on close (see `Db.flushLog`). */
const FLUSH_ON_CLOSE_BYTES = RESERVE_BYTES / 2
/**
 * LevelDB memtable size. With the 4 MiB default a data ingest makes level-0 files faster than
 * compaction merges them, and LevelDB then delays every write by 1 ms: the small record writes
 * between files (create, attributes) took most of a snapshotDir's time (bench/engine.ts, ingest).
 * Costs up to two memtables of memory, and one replay of the log on the next open.
 */
export const WRITE_BUFFER = 64 * 1024 * 1024

type Level = LevelDB<string, Buffer>

/**
 * Write-behinds are acknowledged early only while the batches not yet landed hold less than
 * this; past it a write waits for its batch. A writer that never waits for I/O (every read
 * answered on its own thread) would otherwise never let the event loop take LevelDB's answers:
 * the queue, its memory and the batch a failure must keep for later would grow without bound.
 */
export const WRITE_BEHIND_BYTES = 4 * 1024 * 1024
/** How long a write-behind waits for others to land with it in one batch (see `Db.drain`). */
const GROUP_MS = 1
/** What an op costs beyond its key and value, for `WRITE_BEHIND_BYTES`. */
const OP_OVERHEAD = 64

/**
 * A batch in the write queue (see `Db.write`). `acked`: its writer was answered when it was
 * queued (a write-behind), so if it cannot be written it is kept, never dropped.
 */
interface QueuedWrite {
  ops: BatchOp[]
  /** Its share of `Db.unlandedBytes`. */
  bytes: number
  sync: boolean
  acked: boolean
  done: (err?: unknown) => void
}

const batchBytes = (ops: BatchOp[]): number => ops.reduce((n, op) => n + OP_OVERHEAD + op.key.length + (op.type === 'put' ? op.value.length : 0), 0)

const acknowledged = (): void => {}

/**
 * The LevelDB of one store. Writes go through `Txn`s, each one atomic LevelDB batch: a crash
 * keeps all of an operation or none of it.
 */
export class Db {
  /**
   * The write error that stopped this handle's writes, until LevelDB is reopened (see `resume`).
   * After a failed append LevelDB's log holds a torn record that its writer does not know of:
   * records written after it would be dropped with it on the next open, though acknowledged.
   */
  private failure?: unknown
  private resuming?: Promise<void>
  private readonly queued: QueuedWrite[] = []
  /**
   * Acknowledged batches that a failed write could not write: written first, before anything
   * newer, once `resume` has reopened LevelDB (see `close` for the last try).
   */
  private readonly kept: QueuedWrite[] = []
  /** What the queue and `kept` will write, as reads must see it now. */
  private readonly unlanded = new Unlanded()
  /** Bytes of the batches queued, being written, or kept: what `WRITE_BEHIND_BYTES` bounds. */
  private unlandedBytes = 0
  /** Records read with `getSyncShared`, decoded; a queued write of a key drops it. */
  private readonly decoded = new DecodedCache()
  /** Rows of prefixes read with `scanShared`; a queued write updates them. */
  private readonly scans = new ScanCache()
  private writing = false
  /** The running `drain`, which `settle` waits for. */
  private draining: Promise<void> = Promise.resolve()
  /** Ends the wait of a `drain` that gathers write-behinds. */
  private hurry?: () => void

  private constructor(readonly dir: string, private readonly level: Level, readonly packs: Packs) {}

  static async open(dir: string): Promise<Db> {
    try {
      makeDirs(dir)
    } catch (err) {
      throw new StoreError('EIO', `cannot open store ${dir}: ${(err as Error).message}`)
    }
    // a database is created only for a new store: LevelDB would replace a damaged one by an empty one
    const createIfMissing = checkBeforeOpen(dir) === 'new'
    const level: Level = new LevelDB<string, Buffer>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer', writeBufferSize: WRITE_BUFFER, createIfMissing })
    try {
      await withReserve(dir, () => level.open())
    } catch (err) {
      if (isNoSpace(err)) throw noSpaceError(dir, `cannot open it: opening writes LevelDB's log out as a table, ${mebibytes(reopenBytes(join(dir, 'db')))} MiB; free that much on its filesystem`)
      const cause = (err as { cause?: unknown }).cause
      if (isCode(err, 'LEVEL_LOCKED') || isCode(cause, 'LEVEL_LOCKED')) throw new StoreError('EBUSY', lockedMessage(dir))
      throw new StoreError('EIO', `cannot open store ${dir}: ${(cause as Error | undefined)?.message ?? (err as Error).message}`)
    }
    let db: Db
    try {
      db = new Db(dir, level, Packs.open(join(dir, 'packs')))
      await db.checkFormat()
    } catch (err) {
      await level.close()
      if (err instanceof StoreError) throw err
      throw new StoreError('EIO', `cannot open store ${dir}: ${(err as Error).message}`)
    }
    writeHolder(dir)
    keepReserve(dir)
    return db
  }

  private async checkFormat(): Promise<void> {
    const raw = await this.level.get(FORMAT_KEY)
    if (raw === undefined) {
      const any = await this.level.keys({ limit: 1 }).all()
      if (any.length > 0) throw new StoreError('EFORMAT', `store ${this.dir} has data but no format record; not a Strata store`)
      refuseUnindexedPacks(this.dir)
      await this.write([formatOp()], true)
      return
    }
    const { format } = decode<{ format: number }>(raw)
    if (UPGRADABLE.includes(format)) {
      await this.write([formatOp()], true)
      return
    }
    if (format !== FORMAT_VERSION) {
      throw new StoreError('EFORMAT', `store ${this.dir} has format version ${format}; this Strata reads version ${FORMAT_VERSION}`)
    }
  }

  /**
   * Writes what is queued (acknowledged write-behinds included) and closes LevelDB. When
   * acknowledged changes still cannot be written, LevelDB is closed all the same and the error
   * says how many were lost.
   */
  async close(): Promise<void> {
    try { rmSync(join(this.dir, HOLDER_FILE), { force: true }) } catch { /* best effort */ }
    const unwritten = await this.settle()
    await this.packs.close()
    await this.flushLog()
    await this.level.close()
    if (unwritten > 0) throw this.lostOnClose(unwritten)
  }

  /** Waits until every queued batch has landed or failed, and tries once more to write the kept ones; returns how many are still unwritten. */
  private async settle(): Promise<number> {
    while (this.writing) await this.draining
    if (this.kept.length === 0) return 0
    try {
      await this.resume()
    } catch { /* counted below */ }
    while (this.writing) await this.draining
    return this.kept.length
  }

  private lostOnClose(unwritten: number): StoreError {
    const records = this.kept.reduce((n, w) => n + w.ops.length, 0)
    const what = `${unwritten} acknowledged change(s) (${records} record(s)) could not be written and are lost`
    if (isNoSpace(this.failure)) return noSpaceError(this.dir, `closed with writes stopped: ${what}`)
    return new StoreError('EIO', `store ${this.dir}: closed with writes stopped (${(this.failure as Error | undefined)?.message}): ${what}`)
  }

  /**
   * A long-running process leaves up to two memtables' worth of log (WRITE_BUFFER each) that
   * the next open must write out as a table before anything can be read: on a full disk more
   * than the reserve holds. So a close with a large log writes the memtable out itself, while
   * the disk (it just held the writes) is likelier to have room.
   */
  private async flushLog(): Promise<void> {
    if (this.stopped) return
    try {
      if (logBytes(join(this.dir, 'db')) < FLUSH_ON_CLOSE_BYTES) return
      // a range no key falls in: LevelDB writes the memtable to a table, starts a new log and compacts nothing else
      // (`level` is classic-level on node, which has compactRange; its type here is the portable one)
      await (this.level as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('\uffff', '\uffff')
    } catch { /* the next open replays the log instead */ }
  }

  async getRaw(key: string): Promise<Buffer | undefined> {
    const queued = this.unlanded.value(key)
    if (queued !== undefined) return queued ?? undefined
    try {
      return (await this.level.get(key)) ?? undefined
    } catch (err) {
      throw unreadable(err, key)
    }
  }

  /**
   * A read on the calling thread. For values LevelDB has in the OS page cache this is several
   * times cheaper than a round trip through libuv's pool, and copies the value once instead of twice.
   */
  getRawSync(key: string): Buffer | undefined {
    const queued = this.unlanded.value(key)
    if (queued !== undefined) return queued ?? undefined
    try {
      return this.level.getSync(key) ?? undefined
    } catch (err) {
      throw unreadable(err, key)
    }
  }

  /** `get` on the calling thread: for the small records of a lookup, far cheaper than a trip through libuv's pool. */
  getSync<T>(key: string): T | undefined {
    const raw = this.getRawSync(key)
    return raw === undefined ? undefined : decodeAt<T>(raw, key)
  }

  /**
   * `getSync` of records that are read again and again while they may still change (an active
   * layer's entries and inodes), kept decoded until a write of the key is queued. Every caller
   * gets the same object: `share` makes it safe to share (freezes it) before it is kept.
   */
  getSyncShared<T extends object>(key: string, share: (value: T) => T): T | undefined {
    const hit = this.decoded.get(key)
    if (hit !== NOT_CACHED) return hit as T | undefined
    const raw = this.getRawSync(key)
    const value = raw === undefined ? undefined : share(decodeAt<T>(raw, key))
    this.decoded.set(key, value, raw?.length ?? 0)
    return value
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await this.getRaw(key)
    return raw === undefined ? undefined : decodeAt<T>(raw, key)
  }

  async getManyRaw(keys: string[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return []
    const out = keys.map((k) => this.unlanded.value(k))
    const stored = keys.filter((_, i) => out[i] === undefined)
    if (stored.length > 0) {
      let found: (Buffer | undefined)[]
      try {
        found = await this.level.getMany(stored)
      } catch (err) {
        throw unreadable(err, stored[0])
      }
      let j = 0
      for (let i = 0; i < out.length; i++) if (out[i] === undefined) out[i] = found[j++] ?? undefined
    }
    return out.map((v) => v ?? undefined)
  }

  /**
   * All [key, value] pairs under a prefix, read in batches, queued writes merged in. The
   * iterator (whose snapshot LevelDB takes when it is made) and the queued writes are taken
   * together, with no await between: a batch that lands meanwhile is among the queued writes
   * still, with the same values, and nothing queued later shows.
   */
  async *scan(prefix: string, opts: { keysOnly?: boolean } = {}): AsyncGenerator<[string, Buffer]> {
    const range = prefixRange(prefix)
    const it = this.level.iterator({ ...range, values: !opts.keysOnly })
    const queued = this.unlanded.inRange(range.gt, range.lt)
    try {
      yield* mergeQueued(inBatches(it), queued)
    } finally {
      await it.close()
    }
  }

  /**
   * `scan` of a small prefix that is listed again and again while it changes (an active layer's
   * directory), kept in memory from the first scan on (see ScanCache). Callers share the rows.
   */
  async scanShared(prefix: string): Promise<ReadonlyArray<[string, Buffer]>> {
    const kept = this.scans.get(prefix)
    if (kept) return kept
    const generation = this.scans.generation
    const rows: Array<[string, Buffer]> = []
    for await (const row of this.scan(prefix)) rows.push(row)
    this.scans.fill(prefix, rows, generation)
    return rows
  }

  /** `prefix` holds no key yet (the entries of a directory just made): `scanShared` answers from memory from the start. */
  scanStartsEmpty(prefix: string): void {
    this.scans.empty(prefix)
  }

  async *scanKeys(prefix: string): AsyncGenerator<string> {
    for await (const [k] of this.scan(prefix, { keysOnly: true })) yield k
  }

  async hasPrefix(prefix: string): Promise<boolean> {
    for await (const _ of this.scanKeys(prefix)) return true
    return false
  }

  /** Makes every write so far durable: a synced write flushes LevelDB's log with all before it. */
  async syncLog(): Promise<void> {
    await this.write([formatOp()], true)
  }

  /** `writeBehind`: commits that are not durable are acknowledged once queued (see `write`). */
  txn(opts: { writeBehind?: boolean } = {}): Txn {
    return new Txn(this, this.packs, opts.writeBehind === true)
  }

  /**
   * Writes `ops` as one atomic batch (synced with `sync`). Every write of the store goes
   * through here, one batch at a time, in order: batches that arrive while one is written wait
   * and go together as the next (LevelDB's own group commit, done here so that no batch is
   * handed to LevelDB after one has failed). After a failure nothing more is written until
   * `resume` has reopened LevelDB.
   *
   * Reads see a batch from the moment it is queued. The promise settles when the batch has
   * landed, or at once for a `behind` batch that is not `sync`: an operation's writer is
   * answered without waiting for LevelDB. Such a batch cannot be lost to a failure: it is kept
   * and written first once writes resume; a synced write, `syncLog` and `close` report the
   * failure until then. While writes are stopped, or WRITE_BEHIND_BYTES wait to land, nothing
   * new is acknowledged early.
   */
  write(ops: BatchOp[], sync: boolean, behind = false): Promise<void> {
    const acked = behind && !sync && !this.stopped && this.unlandedBytes < WRITE_BEHIND_BYTES
    return new Promise((resolve, reject) => {
      this.enqueue({ ops, bytes: batchBytes(ops), sync, acked, done: acked ? acknowledged : (err) => (err === undefined ? resolve() : reject(err)) })
      if (acked) resolve()
    })
  }

  private enqueue(w: QueuedWrite): void {
    this.queued.push(w)
    this.unlandedBytes += w.bytes
    this.unlanded.add(w.ops)
    for (const op of w.ops) {
      this.decoded.forget(op.key)
      this.scans.apply(op)
    }
    if (!this.writing) this.draining = this.drain(w.acked)
    else if (!w.acked) this.hurry?.()
  }

  /**
   * Writes the queue out. When it starts for a write-behind, it first waits GROUP_MS for more to
   * go in the same LevelDB batch (cut short by a write whose writer waits): each batch is a trip
   * through libuv's pool and an append to LevelDB's log, and one caller's operations come one
   * after another, each a batch of a few records.
   */
  private async drain(gather = false): Promise<void> {
    this.writing = true
    try {
      if (gather) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, GROUP_MS)
          this.hurry = () => { clearTimeout(timer); resolve() }
        })
        this.hurry = undefined
      }
      while (this.queued.length > 0) {
        let err: unknown
        try {
          // a successful resume puts the kept batches back at the head of the queue
          if (this.stopped) await this.resume()
        } catch (e) {
          err = e // still stopped: already said why
        }
        const group = this.queued.splice(0)
        if (err === undefined) err = await this.writeGroup(group)
        if (err === undefined) this.landed(group)
        else this.notWritten(group, err)
      }
    } finally {
      this.writing = false
    }
  }

  /** Writes the batches of `group` as one LevelDB batch; returns the error to give their writers. */
  private async writeGroup(group: QueuedWrite[]): Promise<unknown> {
    try {
      // a chained batch: cheaper than LevelDB's array form for the few records of most writes
      const batch = this.level.batch()
      for (const op of lastOpPerKey(group.map((w) => w.ops))) {
        if (op.type === 'put') batch.put(op.key, op.value)
        else batch.del(op.key)
      }
      await batch.write({ sync: group.some((w) => w.sync) })
      return undefined
    } catch (e) {
      return this.failed(e)
    }
  }

  private landed(group: QueuedWrite[]): void {
    for (const w of group) {
      this.unlanded.landed(w.ops)
      this.unlandedBytes -= w.bytes
      w.done()
    }
  }

  /** Acknowledged batches are kept for the next try; the others fail, and reads stop seeing them. */
  private notWritten(group: QueuedWrite[], err: unknown): void {
    for (const w of group) {
      if (w.acked) this.kept.push(w)
      else this.unlandedBytes -= w.bytes
    }
    this.unlanded.reset([...this.kept, ...this.queued].map((w) => w.ops))
    // some of what was decoded came from batches that are now dropped
    this.decoded.clear()
    this.scans.clear()
    for (const w of group) if (!w.acked) w.done(err)
  }

  /**
   * Records a failed write (LevelDB's or a pack's): this handle acknowledges nothing more until
   * `resume` succeeds. Returns the error to give the writer: ENOSPC for a full disk.
   */
  failed(err: unknown): unknown {
    this.failure ??= err
    if (isNoSpace(err)) return noSpaceError(this.dir, `write failed (${(err as Error).message}); writes resume once space is freed`)
    return new StoreError('EIO', `store ${this.dir}: write failed (${(err as Error).message}); writes resume once the store is reopened`)
  }

  /** Whether a failed write has stopped this handle's writes (see `resume`). */
  get stopped(): boolean {
    return this.failure !== undefined
  }

  /**
   * After a failed write, reopens LevelDB before the next write is taken: the open replays the
   * log up to the torn record (all that was acknowledged), writes it into a table and starts a
   * new log. That needs room for the log's contents; without it writes keep failing with ENOSPC
   * and LevelDB is left open, so reads go on.
   */
  async resume(): Promise<void> {
    if (!this.stopped) return
    this.resuming ??= this.reopen().finally(() => { this.resuming = undefined })
    await this.resuming
  }

  private async reopen(): Promise<void> {
    const dbDir = join(this.dir, 'db')
    const needed = reopenBytes(dbDir)
    // the reserve is not spent here: it is for opening the store, and written data would take it
    if (freeBytes(this.dir) < needed) {
      throw noSpaceError(this.dir, `writes stopped after a failed write; ${mebibytes(needed)} MiB must be free to resume them`)
    }
    await this.packs.seal()
    await this.level.close()
    try {
      // if the estimate was short, the reserve goes rather than leave the store closed to reads
      await withReserve(this.dir, () => this.level.open())
    } catch (err) {
      if (isNoSpace(err)) throw noSpaceError(this.dir, `cannot reopen it to resume writes (${(err as Error).message})`)
      throw new StoreError('EIO', `store ${this.dir}: cannot reopen it to resume writes after a failed write: ${(err as Error).message}`)
    }
    this.failure = undefined
    keepReserve(this.dir)
    this.retryKept()
  }

  /** The batches a failure kept go first, ahead of everything queued since. */
  private retryKept(): void {
    if (this.kept.length === 0) return
    this.queued.unshift(...this.kept.splice(0))
    if (!this.writing) this.draining = this.drain()
  }
}

const mebibytes = (bytes: number): number => Math.ceil(bytes / (1024 * 1024))

/** An iterator's pairs, read 1000 at a time. */
async function* inBatches(it: { nextv(n: number): Promise<Array<[string, Buffer | undefined]>> }): AsyncGenerator<[string, Buffer]> {
  for (;;) {
    const batch = await it.nextv(1000)
    if (batch.length === 0) return
    for (const [k, v] of batch) yield [k, v as Buffer]
  }
}

function formatOp(): BatchOp {
  return { type: 'put', key: FORMAT_KEY, value: encode({ format: FORMAT_VERSION }) }
}

/** Who holds the store, for the message a second opener gets. Best effort: on a full disk it is not written. */
function writeHolder(dir: string): void {
  try {
    writeFileSync(join(dir, HOLDER_FILE), JSON.stringify({ pid: process.pid, command: process.argv.slice(1).join(' ') || process.title, since: new Date().toISOString() }))
  } catch { /* informational only */ }
}

/**
 * mkdir -p, one level at a time: node's recursive mkdir spins forever where mkdir answers ENOENT
 * under an existing parent (as in /proc).
 */
function makeDirs(dir: string): void {
  try {
    if (statSync(dir).isDirectory()) return
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err
    const parent = dirname(dir)
    if (parent !== dir) makeDirs(parent)
    mkdirSync(dir)
    return
  }
  throw Object.assign(new Error(`${dir} exists and is not a directory`), { code: 'ENOTDIR' })
}

/**
 * A read LevelDB failed, as it does on a damaged table (`Corruption: corrupted compressed block
 * contents`), or a record that does not decode: EIO, which callers that know the path name it
 * in (Overlay), never a crash.
 */
export class DbReadError extends FsError {
  constructor(readonly key: string, readonly why: string) {
    super('EIO', 'read', undefined, `the store's database cannot be read at key ${key}: ${why}`)
  }
}

const unreadable = (err: unknown, key: string): DbReadError => new DbReadError(key, (err as Error).message)

function decodeAt<T>(raw: Buffer, key: string): T {
  try {
    return decode<T>(raw)
  } catch (err) {
    throw new DbReadError(key, `damaged record (${(err as Error).message.slice(0, 80)})`)
  }
}

/** The process that has the store open, as its HOLDER file tells; undefined when that cannot be read. */
function readHolder(dir: string): { pid: number; command: string; since: string } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, HOLDER_FILE), 'utf8')) as { pid: number; command: string; since: string }
  } catch {
    return undefined
  }
}

/** Who has the store open, as a message names it: the process where its HOLDER file tells. */
export function inUseBy(dir: string, h = readHolder(dir)): string {
  return h ? `store ${dir} is in use by process ${h.pid} (${h.command})` : `store ${dir} is in use by another process`
}

/** Why a store is refused as in use, naming the process that holds it where its HOLDER file tells. */
export function lockedMessage(dir: string): string {
  const h = readHolder(dir)
  return `${inUseBy(dir, h)}${h ? ` since ${h.since}` : ''}; stop it or use another --store`
}

/** A set of writes applied as one atomic batch; reads of keys it wrote see the new values. */
export class Txn {
  private readonly ops = new Map<string, Buffer | null>()
  /** New chunk bodies by chunk id: written to a pack or under `C/` at commit (see PACK_MIN_BYTES). */
  private readonly chunks = new Map<string, Buffer>()
  private chunkBytes = 0
  /** Chunks of `chunks` that `moveChunk` relocates (their old pointer is replaced or deleted). */
  private readonly moved = new Set<string>()
  /** A txn committed before this one whose write may not have landed yet (see `follows`). */
  private earlier?: Txn
  /** `writeBehind`: a commit that is not durable returns once its batch is queued (see `Db.write`). */
  constructor(private readonly db: Db, private readonly packs: Packs, private readonly writeBehind = false) {}

  /**
   * Makes `pending` see the writes of `earlier` too, while they are being written: a txn filled
   * while the one before it is written must dedup chunks against it as against the store.
   */
  follows(earlier: Txn): void {
    this.earlier = earlier
  }

  put(key: string, value: unknown): void {
    this.ops.set(key, encode(value))
  }
  putRaw(key: string, value: Buffer): void {
    this.ops.set(key, value)
  }
  del(key: string): void {
    this.ops.set(key, null)
  }
  /** Stores a new chunk body under chunk id `id`; where it goes is decided at commit. */
  putChunk(id: string, body: Buffer): void {
    if (!this.chunks.has(id)) this.chunkBytes += body.length
    this.chunks.set(id, body)
  }
  /**
   * Stores again a chunk that is already stored (gc moving it out of a pack): to a new pack
   * or into LevelDB like any new chunk, and the old pointer goes.
   */
  moveChunk(id: string, body: Buffer): void {
    this.putChunk(id, body)
    this.moved.add(id)
  }
  /** The body of a chunk this txn (or the one it follows) stores, if any. */
  pendingChunk(id: string): Buffer | undefined {
    return this.chunks.get(id) ?? this.earlier?.pendingChunk(id)
  }
  /** The value this txn (or the one it follows) will write (null: deleted), or undefined when neither touches the key. */
  pending(key: string): Buffer | null | undefined {
    return this.ops.get(key) ?? this.earlier?.pending(key)
  }
  get size(): number {
    return this.ops.size + this.chunks.size
  }

  async commit(sync = false): Promise<void> {
    if (this.size === 0) return
    try {
      // nothing, not even pack bytes, is written while writes are stopped after a failure
      if (this.db.stopped) await this.db.resume()
      const packed = this.chunkBytes >= PACK_MIN_BYTES
      // bodies durable first: no crash may leave a pointer to bytes that never reached the disk
      let where: PackPointer[] = []
      if (packed) {
        try {
          where = await this.packs.append([...this.chunks.values()])
        } catch (err) {
          throw this.db.failed(err)
        }
      }
      const ops: BatchOp[] = []
      if (packed) {
        let i = 0
        for (const id of this.chunks.keys()) ops.push({ type: 'put', key: packedKey(id), value: encodePointer(where[i++]) })
      } else {
        for (const [id, body] of this.chunks) {
          ops.push({ type: 'put', key: chunkKey(id), value: body })
          if (this.moved.has(id)) ops.push({ type: 'del', key: packedKey(id) })
        }
      }
      for (const [k, v] of this.ops) ops.push(v === null ? { type: 'del', key: k } : { type: 'put', key: k, value: v })
      // pointers into a pack wait for their batch as every pack writer does
      await this.db.write(ops, sync, this.writeBehind && !packed)
    } finally {
      // only now: until the write has landed, a txn that follows this one reads its values here
      this.ops.clear()
      this.chunks.clear()
      this.moved.clear()
      this.chunkBytes = 0
      this.earlier = undefined
    }
  }
}
