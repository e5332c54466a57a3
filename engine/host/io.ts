import { close as fsClose, closeSync, constants, open as fsOpen, openSync, read as fsRead, readSync } from 'node:fs'
import { CHUNK_SIZE } from '../store/chunks.js'
import { FsError, StoreError, fsError, type ErrnoCode } from '../errors.js'

/** Host reads (and snapshot reads on checkout) go in pieces of this size: 16 chunks. */
export const IO_BYTES = 16 * CHUNK_SIZE

export const ZERO_CHUNK = Buffer.alloc(CHUNK_SIZE)

/**
 * Runs `fn` on every item, at most `limit` at a time. After a failure no new item starts, and
 * the first error is thrown once the running ones have settled (none is left half done).
 */
export async function forEachLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]
      try {
        await fn(item)
      } catch (err) {
        failed ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failed) throw failed.err
}

/** Reads until `buf` is full or the file ends; returns the bytes read. */
export async function readFull(file: { read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }> }, buf: Buffer, pos: number): Promise<number> {
  let got = 0
  while (got < buf.length) {
    const { bytesRead } = await file.read(buf, got, buf.length - got, pos + got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return got
}

/** A blocking read slower than this came from the disk rather than the page cache. */
const SLOW_READ_NS = 40_000n
/** Reads made through the thread pool once one blocking read was slow. */
const POOLED_READS = 32

/**
 * Whether a host call of a few KiB should block or go through the thread pool, by how fast such
 * calls answer now. From the page cache a blocking read or write takes microseconds, a tenth of a
 * trip through the pool; from a busy disk it takes far longer, and other work should go on
 * meanwhile. So calls block until one is slow, then go through the pool for a while.
 */
export class BlockingGate {
  private pooledLeft = 0

  /** `slowNs`: what counts as slow (tests take 0n to go through the thread pool). */
  constructor(private readonly slowNs = SLOW_READ_NS) {}

  /** Whether the next call may block; if so, time it and pass the start to `done`. */
  mayBlock(): boolean {
    if (this.pooledLeft === 0) return true
    this.pooledLeft--
    return false
  }

  done(start: bigint): void {
    if (process.hrtime.bigint() - start > this.slowNs) this.pooledLeft = POOLED_READS
  }
}

/**
 * Reads small host files whole, choosing how by how fast the host answers. From the page cache
 * a blocking read takes a few microseconds, a tenth of what a trip through the thread pool costs;
 * from the disk it takes a hundred or more, and reads in flight together finish sooner. So reads
 * block until one is slow, then go through the thread pool for a while.
 */
export class SmallFileReader {
  private pooledLeft = 0

  /** `slowReadNs`: what counts as slow (tests take 0 to read through the thread pool). */
  constructor(private readonly slowReadNs = SLOW_READ_NS) {}

  async read(path: string, sizeHint: number): Promise<Buffer> {
    if (this.pooledLeft > 0) {
      this.pooledLeft--
      return readSmallFile(path, sizeHint)
    }
    const start = process.hrtime.bigint()
    const data = readSmallFileSync(path, sizeHint)
    if (process.hrtime.bigint() - start > this.slowReadNs) this.pooledLeft = POOLED_READS
    return data
  }
}

/**
 * The whole content of a small host file (not following a symlink). Through node:fs's callback
 * calls: the promise-based ones cost twice the main thread's time per file, which for a file of
 * a few KiB is most of the cost (bench/engine.ts, resnapshot). `sizeHint` is the size seen when
 * the tree was scanned; a file that grew since is read to its end all the same.
 */
function readSmallFile(path: string, sizeHint: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    fsOpen(path, constants.O_RDONLY | constants.O_NOFOLLOW, (err, fd) => {
      if (err) return reject(err)
      // one byte more than expected, so that a file that grew is noticed at once
      let buf: Buffer = Buffer.allocUnsafe(sizeHint + 1)
      let got = 0
      const done = (readErr: Error | null): void => fsClose(fd, (closeErr) => {
        const e = readErr ?? closeErr
        if (e) reject(e)
        else resolve(buf.subarray(0, got))
      })
      const next = (): void => {
        if (got === buf.length) buf = grow(buf, got)
        fsRead(fd, buf, got, buf.length - got, got, (readErr, n) => {
          if (readErr || n === 0) return done(readErr)
          got += n
          next()
        })
      }
      next()
    })
  })
}

/** readSmallFile with blocking calls. */
function readSmallFileSync(path: string, sizeHint: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    let buf: Buffer = Buffer.allocUnsafe(sizeHint + 1)
    let got = 0
    for (;;) {
      if (got === buf.length) buf = grow(buf, got)
      const n = readSync(fd, buf, got, buf.length - got, got)
      if (n === 0) return buf.subarray(0, got)
      got += n
    }
  } finally {
    closeSync(fd)
  }
}

function grow(buf: Buffer, used: number): Buffer {
  const bigger = Buffer.allocUnsafe(buf.length * 2)
  buf.copy(bigger, 0, 0, used)
  return bigger
}

/**
 * Writes `buf[0, length)` (file data at `position`, a multiple of CHUNK_SIZE) except its all-zero
 * chunks, in runs of consecutive non-zero chunks. What is skipped stays a hole in the target.
 */
export async function writeNonZeroRuns(buf: Buffer, length: number, position: number, write: (offset: number, length: number, position: number) => Promise<unknown>): Promise<void> {
  let runStart = -1
  for (let off = 0; off < length; off += CHUNK_SIZE) {
    const end = Math.min(length, off + CHUNK_SIZE)
    const zero = buf.subarray(off, end).equals(ZERO_CHUNK.subarray(0, end - off))
    if (!zero && runStart < 0) runStart = off
    if (zero && runStart >= 0) {
      await write(runStart, off - runStart, position + runStart)
      runStart = -1
    }
  }
  if (runStart >= 0) await write(runStart, length - runStart, position + runStart)
}

const ERRNO_CODES = new Set<string>([
  'ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EXDEV', 'ENAMETOOLONG', 'EINVAL', 'EACCES', 'EPERM', 'EROFS',
  'EBADF', 'EBUSY', 'ELOOP', 'EMLINK', 'ENODATA', 'ERANGE', 'ENOTSUP', 'EFBIG', 'ESTALE', 'EIO', 'ENOSPC',
] satisfies ErrnoCode[])

/**
 * A host I/O error as an FsError, keeping its errno name and path; codes the engine does not
 * name (EDQUOT...) become EIO with the original message. Engine errors pass through.
 */
export function hostError(err: unknown, syscall: string, path: string): unknown {
  if (err instanceof FsError || err instanceof StoreError) return err
  const e = err as { code?: unknown; path?: unknown; syscall?: unknown; message?: unknown }
  if (typeof e?.code !== 'string') return err
  const where = typeof e.path === 'string' ? e.path : path
  const call = typeof e.syscall === 'string' ? e.syscall : syscall
  const code = e.code === 'EOPNOTSUPP' ? 'ENOTSUP' : e.code
  if (ERRNO_CODES.has(code)) return fsError(code as ErrnoCode, call, where)
  return fsError('EIO', call, where, String(e.message))
}
