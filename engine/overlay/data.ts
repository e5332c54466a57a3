import type { DataFields } from '../store/filedata.js'
import type { UpperTxn } from './node.js'

/**
 * The data of one open regular file, wherever it lives: chunks of the store (FileContent) or a
 * file of a directory layer (HostFileData). Every handle on the inode shares one.
 */
export interface FileData {
  readonly size: number
  /** Written or truncated since the last flush. */
  readonly isChanged: boolean
  /** Bytes held in memory and not yet flushed. */
  readonly dirtyBytes: number
  /** The host file it reads, for data that lives on the host. */
  readonly hostPath?: string
  /** The open descriptor of that host file (see FileHandle.hostDescriptor). */
  hostDescriptor?(): number
  read(target: Buffer, targetOffset: number, length: number, position: number): Promise<number>
  /** The same bytes as views of buffers the data already holds, where it holds them (store chunks). */
  slices?(length: number, position: number): Promise<Buffer[]>
  write(data: Uint8Array, position: number): Promise<void>
  truncate(size: number): Promise<void>
  /** Writes what is pending within `txn`; returns the data fields of the inode record. */
  flush(txn: UpperTxn, durable: boolean): Promise<DataFields>
  /** Makes data written before durable (fsync of a clean file). */
  sync(): Promise<void>
  /** Lets go of what the data holds open (the last handle closed, or the inode moved up). */
  release(): Promise<void>
}
