import { copyFile, type FileHandle } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'

/** Data a copy must have added since the last fdatasync before the next one (see flushWhile). */
const FLUSH_BYTES = 128 * 1024 * 1024
/** How often the size of the copy is looked at, milliseconds. */
const POLL_MS = 10

/**
 * From this size on, a copy's data is written to the disk while the copy runs: at least one
 * step of FLUSH_BYTES goes out before the end. Below it the write-out after the copy is short.
 */
export const OVERLAP_BYTES = 2 * FLUSH_BYTES

/**
 * Copies the host file `src` into `dst`, a new empty file open as `fh`, cut or extended to
 * `size` bytes, and makes the copy durable (fsync) before returning: a copy-up must be on the
 * disk before it gets its name in the upper dir, or a crash could leave that name on a file
 * with missing data.
 *
 * The data is copied in the kernel (libuv's copyfile: copy_file_range). The kernel's copy-up
 * copies everything and then fsyncs it, so the whole write-out comes after the copy; here a big
 * file is written out while the copy runs (`flushWhile`), and the last fsync has little left.
 */
export async function copyHostFileDurably(src: string, dst: string, fh: FileHandle, size: number): Promise<void> {
  if (size < OVERLAP_BYTES) await copyFile(src, dst)
  else await flushWhile(fh, copyFile(src, dst))
  // `size` wins over the host file's: the record may have been truncated since it was read
  if ((await fh.stat()).size !== size) await fh.truncate(size)
  await fh.sync()
}

/**
 * Waits for `work` (a copy into `fh`) while writing out `fh`'s data in steps of FLUSH_BYTES or
 * more: each fdatasync writes what the copy added since the last. Steps are not smaller because
 * each fdatasync is also a journal commit and a flush of the disk's cache; when the source is
 * read from the disk, a commit every few MiB slows the copy more than the overlap saves. The
 * first error (of either) is thrown once both have stopped, so no fdatasync is left running on
 * a handle the caller closes.
 */
export async function flushWhile(fh: FileHandle, work: Promise<unknown>): Promise<void> {
  let working = true
  const done = work.finally(() => { working = false })
  const flush = async (): Promise<void> => {
    let flushed = 0
    while (working) {
      const size = (await fh.stat()).size
      if (size - flushed >= FLUSH_BYTES) {
        await fh.datasync()
        flushed = size
      } else await delay(POLL_MS)
    }
  }
  const [worked, flushedOut] = await Promise.allSettled([done, flush()])
  if (worked.status === 'rejected') throw worked.reason
  if (flushedOut.status === 'rejected') throw flushedOut.reason
}
