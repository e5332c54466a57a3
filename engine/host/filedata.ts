import { open, type FileHandle } from 'node:fs/promises'
import type { DataFields } from '../store/filedata.js'
import type { FileData } from '../overlay/data.js'
import type { UpperTxn } from '../overlay/node.js'
import { fsError, isCode } from '../errors.js'

/**
 * The data of a file of a directory layer: reads and writes go straight to the host file, so an
 * upper file is always what the kernel would see. Lower files are opened read-only.
 */
export class HostFileData implements FileData {
  private changed = false

  private constructor(private readonly fh: FileHandle, readonly hostPath: string, public size: number) {}

  static async open(hostPath: string, writable: boolean, path: string): Promise<HostFileData> {
    let fh: FileHandle
    try {
      fh = await open(hostPath, writable ? 'r+' : 'r')
    } catch (err) {
      if (isCode(err, 'ENOENT')) throw fsError('EIO', 'open', path, `layer file ${hostPath} is gone`)
      throw err
    }
    const st = await fh.stat()
    return new HostFileData(fh, hostPath, st.size)
  }

  get isChanged(): boolean {
    return this.changed
  }
  get dirtyBytes(): number {
    return 0
  }

  async read(target: Buffer, targetOffset: number, length: number, position: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.size - position))
    let done = 0
    while (done < want) {
      const { bytesRead } = await this.fh.read(target, targetOffset + done, want - done, position + done)
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
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, position + done)
      done += bytesWritten
    }
    this.size = Math.max(this.size, position + data.length)
    this.changed = true
  }

  async truncate(size: number): Promise<void> {
    await this.fh.truncate(size)
    this.size = size
    this.changed = true
  }

  async flush(_txn: UpperTxn, durable: boolean): Promise<DataFields> {
    if (durable) await this.fh.sync()
    this.changed = false
    return { size: this.size }
  }

  async sync(): Promise<void> {
    await this.fh.sync()
  }

  async release(): Promise<void> {
    await this.fh.close()
  }
}
