import { CHUNK_SIZE } from './chunks.js'

/**
 * Once this many bytes were read in sequence, further reads of the sequence are a stream: their
 * chunks are used from the chunk cache but not added to it. Smaller files are cached whole, as
 * the data of random reads is.
 */
export const STREAM_AFTER = 8 * 1024 * 1024
/**
 * A read starting this close to where the last one ended continues the sequence: the kernel
 * sends the requests of one sequential reader several at a time, so they may arrive out of order.
 */
const SLACK = 4 * 1024 * 1024
/** Chunks whose lookup is kept under way ahead of a stream that reads cold data (16 MiB). */
export const TOUCH_AHEAD = (16 * 1024 * 1024) / CHUNK_SIZE

/** Major page faults of the process so far: LevelDB maps its files, so a read of data not in the OS page cache shows here. */
export const majorFaults = (): number => process.resourceUsage().majorPageFault

/** What a read of an open file should do beyond reading its chunks. */
export interface ReadPlan {
  /** Add what it reads to the chunk cache (false for streams). */
  keep: boolean
  /** Part of a sequential run: after the read, call `ReadStream.after`. */
  sequential: boolean
}

/**
 * Access pattern of one open file: detects sequential reads, and whether they find their data
 * in the OS page cache. A sequential reader of cold data gets the lookups of the chunks it will
 * read next started on libuv's pool (`ChunkStore.touch`), so the disk reads run there, several at
 * once, while this thread serves what is already in memory. On data that is already in memory
 * that would only add work, so it happens only while reads keep meeting the disk.
 */
export class ReadStream {
  /** Where the sequence ends so far; -1 before any read. */
  private end = -1
  /** Bytes read in the current sequence. */
  private streamed = 0
  /** Chunks before this one have had their lookup started. */
  private touchedTo = 0
  private cold = false
  /** `majorFaults()` after the last sequential read, and when the touch window was last refilled (-1: not yet). */
  private faults = -1
  private faultsAtRefill = 0

  /** `faultCount`: the process's major page faults so far (replaced in tests). */
  constructor(private readonly faultCount: () => number = majorFaults) {}

  plan(position: number, end: number): ReadPlan {
    const sequential = this.end >= 0 && Math.abs(position - this.end) <= SLACK
    if (sequential) {
      this.end = Math.max(this.end, end)
    } else {
      this.end = end
      this.streamed = 0
      this.touchedTo = 0
      this.cold = false
      this.faults = -1
    }
    const keep = this.streamed < STREAM_AFTER
    this.streamed += end - position
    return { keep, sequential }
  }

  /** After a sequential read that ended before chunk `next`: the range of chunks whose lookup should start now, if any. */
  after(next: number, chunkCount: number): [number, number] | undefined {
    // one reading per read (it costs a system call): faults since the previous read of the sequence
    const faults = this.faultCount()
    const before = this.faults
    this.faults = faults
    if (!this.cold) {
      if (before < 0 || faults === before) return undefined
      this.cold = true
      this.touchedTo = next
      this.faultsAtRefill = faults
    }
    if (this.touchedTo < next) this.touchedTo = next
    // refill once half of the window is used
    if (this.touchedTo - next >= TOUCH_AHEAD / 2 || this.touchedTo >= chunkCount) return undefined
    if (this.touchedTo > next && faults === this.faultsAtRefill) {
      // half a window read with no disk read anywhere in the process: the data is in memory now
      this.cold = false
      return undefined
    }
    this.faultsAtRefill = faults
    const from = this.touchedTo
    this.touchedTo = Math.min(next + TOUCH_AHEAD, chunkCount)
    return [from, this.touchedTo]
  }
}
