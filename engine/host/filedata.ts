import { closeSync, fstatSync, fsync, ftruncate, openSync, read, readSync, write, writeSync } from 'node:fs'
import { promisify } from 'node:util'
import type { DataFields } from '../store/filedata.js'
import type { FileData } from '../overlay/data.js'
import type { UpperTxn } from '../overlay/node.js'
import { fsError, isCode } from '../errors.js'
import { BlockingGate } from './io.js'

const readAsync = promisify(read)
const writeAsync = promisify(write)
const ftruncateAsync = promisify(ftruncate)
const fsyncAsync = promisify(fsync)

/** Reads and writes up to this size may block (see BlockingGate); larger ones use the pool. */
const BLOCKING_IO_BYTES = 64 * 1024

/**
 * Host file reads and writes of all directory layers; one slow call sends the next ones to the
 * pool. A read from the page cache takes microseconds (one from the disk is slow); a write lands
 * in the page cache unless the kernel throttles the writer, which takes milliseconds.
 */
const readGate = new BlockingGate()
const writeGate = new BlockingGate(1_000_000n)

/**
 * The data of a file of a directory layer: reads and writes go straight to the host file, so an
 * upper file is always what the kernel would see. Lower files are opened read-only. Opening,
 * closing and small reads and writes block (page-cache speed, see BlockingGate); large ones,
 * truncate and fsync go through the thread pool.
 */
export class HostFileData implements FileData {
  private changed = false
  /** The host descriptor; -1 once released, so a stale call never reaches a reused number. */
  private fd: number

  private constructor(fd: number, readonly hostPath: string, public size: number) {
    this.fd = fd
  }

  static async open(hostPath: string, writable: boolean, path: string): Promise<HostFileData> {
    let fd: number
    try {
      fd = openSync(hostPath, writable ? 'r+' : 'r')
    } catch (err) {
      if (isCode(err, 'ENOENT')) throw fsError('EIO', 'open', path, `layer file ${hostPath} is gone`)
      throw err
    }
    try {
      return new HostFileData(fd, hostPath, fstatSync(fd).size)
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  get isChanged(): boolean {
    return this.changed
  }
  get dirtyBytes(): number {
    return 0
  }

  hostDescriptor(): number {
    return this.fdFor('open')
  }

  private fdFor(syscall: string): number {
    if (this.fd < 0) throw fsError('EBADF', syscall, this.hostPath, 'file closed')
    return this.fd
  }

  async read(target: Buffer, targetOffset: number, length: number, position: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.size - position))
    let done = 0
    while (done < want) {
      const fd = this.fdFor('read')
      let bytesRead: number
      if (want - done <= BLOCKING_IO_BYTES && readGate.mayBlock()) {
        const start = process.hrtime.bigint()
        bytesRead = readSync(fd, target, targetOffset + done, want - done, position + done)
        readGate.done(start)
      } else {
        bytesRead = (await readAsync(fd, target, targetOffset + done, want - done, position + done)).bytesRead
      }
      if (bytesRead === 0) break
      done += bytesRead
    }
    // a host file shorter than its size (never written past a hole) reads as zeroes
    if (done < want) target.fill(0, targetOffset + done, targetOffset + want)
    return want
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    if (data.length === 0) return
    let done = 0
    while (done < data.length) {
      const fd = this.fdFor('write')
      if (data.length - done <= BLOCKING_IO_BYTES && writeGate.mayBlock()) {
        const start = process.hrtime.bigint()
        done += writeSync(fd, data, done, data.length - done, position + done)
        writeGate.done(start)
      } else {
        done += (await writeAsync(fd, data, done, data.length - done, position + done)).bytesWritten
      }
    }
    this.size = Math.max(this.size, position + data.length)
    this.changed = true
  }

  async truncate(size: number): Promise<void> {
    await ftruncateAsync(this.fdFor('ftruncate'), size)
    this.size = size
    this.changed = true
  }

  async flush(_txn: UpperTxn, durable: boolean): Promise<DataFields> {
    if (durable) await fsyncAsync(this.fdFor('fsync'))
    this.changed = false
    return { size: this.size }
  }

  async sync(): Promise<void> {
    await fsyncAsync(this.fdFor('fsync'))
  }

  async release(): Promise<void> {
    const fd = this.fd
    if (fd < 0) return
    this.fd = -1
    closeSync(fd)
  }
}
