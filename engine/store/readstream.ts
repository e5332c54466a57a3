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
export const SLACK = 4 * 1024 * 1024
/**
 * Read-ahead starts once a sequence has read this much: the second 1 MiB request of a reader
 * (the largest the kernel sends). Files read whole in one or two requests never pay for it.
 */
export const READ_AHEAD_AFTER = 1024 * 1024
/** Chunks kept being read ahead of a stream (16 MiB). */
export const READ_AHEAD = (16 * 1024 * 1024) / CHUNK_SIZE

/** What a read of an open file should do beyond reading its chunks. */
export interface ReadPlan {
  /** Add what it reads to the chunk cache (false for streams). */
  keep: boolean
  /** Part of a sequential run: after the read, call `ReadStream.after`. */
  sequential: boolean
}

/**
 * Access pattern of one open file. A sequential reader gets the chunks it will read next read on
 * libuv's pool (`ChunkStore.prefetch`): LevelDB maps its files, so a chunk not in the OS page
 * cache is a page fault, and the OS reads several MiB around each one. On the serving thread
 * that wait stops every other request; on the pool several such reads run at once. Data already
 * in memory costs one more copy there, on another thread.
 */
export class ReadStream {
  /** Where the sequence ends so far; -1 before any read. */
  private end = -1
  /** Bytes read in the current sequence. */
  private streamed = 0
  /** Chunks before this one have been asked for ahead. */
  private aheadTo = 0

  plan(position: number, end: number): ReadPlan {
    const sequential = this.end >= 0 && Math.abs(position - this.end) <= SLACK
    if (sequential) {
      this.end = Math.max(this.end, end)
    } else {
      this.end = end
      this.streamed = 0
      this.aheadTo = 0
    }
    const keep = this.streamed < STREAM_AFTER
    this.streamed += end - position
    return { keep, sequential }
  }

  /** After a sequential read that ended before chunk `next`: the range of chunks to start reading ahead now, if any. */
  after(next: number, chunkCount: number): [number, number] | undefined {
    if (this.streamed <= READ_AHEAD_AFTER) return undefined
    if (this.aheadTo < next) this.aheadTo = next
    // refill once half of the window is used
    if (this.aheadTo - next >= READ_AHEAD / 2 || this.aheadTo >= chunkCount) return undefined
    const from = this.aheadTo
    this.aheadTo = Math.min(next + READ_AHEAD, chunkCount)
    return [from, this.aheadTo]
  }
}
