import type { Txn } from './db.js'
import type { Mutex } from '../overlay/lock.js'

/**
 * A stream of batches written one after the other, the next one filled while the last one is
 * being written: LevelDB writes a batch on its own thread, and filling one (hashing chunks,
 * looking them up, encoding records) is as much work again on the main thread, so doing both at
 * once is what brings a large import close to LevelDB's own speed (bench/engine.ts, ingest).
 *
 * Each batch is filled and written under the store's lock, held from the filling of one batch
 * through the end of its write: a chunk found already stored is only referenced, and gc, which
 * takes the same lock, must not remove it before the batch that references it is written; and a
 * chunk in the batch being written counts as stored (Txn.follows), so that a different content
 * with the same hash gets another ref rather than overwriting it. While
 * batches keep coming the lock stays held, but it is let go every few batches so that other
 * callers waiting for it get their turn. Calls must not overlap: the caller makes them one at a
 * time.
 */
export class BatchPipeline {
  private held?: { release: () => void }
  private batchesHeld = 0
  /** Batches filled and not yet written. */
  private pending = 0
  private lastWrite: Promise<void> = Promise.resolve()
  private lastTxn?: Txn
  private failure?: { err: unknown }

  constructor(private readonly lock: Mutex) {}

  /**
   * Runs `fill` on `txn` under the store's lock, then queues the write of `txn`; returns when
   * the write before it is done, so that at most two batches wait in memory.
   */
  async submit(txn: Txn, fill: (txn: Txn) => Promise<void>): Promise<void> {
    this.throwIfFailed()
    if (this.held && this.batchesHeld >= MAX_BATCHES_HELD) await this.letGo()
    if (!this.held) await this.take()
    this.pending++
    this.batchesHeld++
    // the batch before may still be being written: chunks are deduped against it too
    if (this.lastTxn) txn.follows(this.lastTxn)
    this.lastTxn = txn
    try {
      await fill(txn)
    } catch (err) {
      this.written()
      throw err
    }
    const before = this.lastWrite
    this.lastWrite = before.then(() => txn.commit()).then(
      () => this.written(),
      (err: unknown) => {
        this.failure ??= { err }
        this.written()
      },
    )
    await before
    this.throwIfFailed()
  }

  /** Waits for every queued write; the lock is let go. */
  async drain(): Promise<void> {
    await this.lastWrite
    this.throwIfFailed()
  }

  private written(): void {
    if (--this.pending === 0) this.release()
  }

  private async letGo(): Promise<void> {
    await this.lastWrite
    this.release()
  }

  private release(): void {
    this.held?.release()
    this.held = undefined
    this.batchesHeld = 0
  }

  private async take(): Promise<void> {
    let release!: () => void
    const until = new Promise<void>((resolve) => { release = resolve })
    await new Promise<void>((taken) => {
      void this.lock.run(() => {
        taken()
        return until
      })
    })
    this.held = { release }
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.err
  }
}

/** Batches written before the lock is let go once (8 of at most 8 MiB: well under a second). */
const MAX_BATCHES_HELD = 8
