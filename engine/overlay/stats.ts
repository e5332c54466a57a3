import type { InodeRecord, Timespec } from '../store/records.js'
import { T, isDirType, typeOf } from './node.js'

const S_IFMT = 0o170000

/** What stat returns: node's fs.Stats fields, with nanosecond times as bigints too. */
export class Stats {
  readonly dev: number
  readonly ino: number
  readonly mode: number
  readonly nlink: number
  readonly uid: number
  readonly gid: number
  readonly rdev: number
  readonly size: number
  readonly blksize = 4096
  readonly blocks: number
  readonly atimeMs: number
  readonly mtimeMs: number
  readonly ctimeMs: number
  readonly birthtimeMs: number
  readonly atimeNs: bigint
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint

  constructor(dev: number, ino: number, rec: InodeRecord, nlink: number) {
    this.dev = dev
    this.ino = ino
    this.mode = rec.mode
    this.nlink = nlink
    this.uid = rec.uid
    this.gid = rec.gid
    this.rdev = rec.rdev
    this.size = isDirType(typeOf(rec.mode)) ? 4096 : rec.size
    this.blocks = Math.ceil(this.size / 512)
    this.atimeNs = toNs(rec.atime)
    this.mtimeNs = toNs(rec.mtime)
    this.ctimeNs = toNs(rec.ctime)
    this.atimeMs = Number(this.atimeNs / 1000n) / 1000
    this.mtimeMs = Number(this.mtimeNs / 1000n) / 1000
    this.ctimeMs = Number(this.ctimeNs / 1000n) / 1000
    this.birthtimeMs = this.ctimeMs
  }

  get atime(): Date { return new Date(this.atimeMs) }
  get mtime(): Date { return new Date(this.mtimeMs) }
  get ctime(): Date { return new Date(this.ctimeMs) }

  isFile(): boolean { return (this.mode & S_IFMT) === 0o100000 }
  isDirectory(): boolean { return (this.mode & S_IFMT) === 0o040000 }
  isSymbolicLink(): boolean { return (this.mode & S_IFMT) === 0o120000 }
  isCharacterDevice(): boolean { return (this.mode & S_IFMT) === 0o020000 }
  isBlockDevice(): boolean { return (this.mode & S_IFMT) === 0o060000 }
  isFIFO(): boolean { return (this.mode & S_IFMT) === 0o010000 }
  isSocket(): boolean { return (this.mode & S_IFMT) === 0o140000 }
}

export const toNs = (t: Timespec): bigint => BigInt(t[0]) * 1000000000n + BigInt(t[1])
export const fromNs = (ns: bigint): Timespec => {
  const s = ns / 1000000000n
  let n = ns % 1000000000n
  if (n < 0n) n += 1000000000n
  return [Number(ns < 0n && n !== 0n ? s - 1n : s), Number(n)]
}

/** A directory entry as readdir({ withFileTypes: true }) gives it; `ino` equals the entry's st_ino. */
export class Dirent {
  constructor(readonly name: string, readonly ino: number, readonly type: number, readonly parentPath: string) {}
  get path(): string { return this.parentPath }
  isFile(): boolean { return this.type === T.REG }
  isDirectory(): boolean { return this.type === T.DIR }
  isSymbolicLink(): boolean { return this.type === T.LNK }
  isCharacterDevice(): boolean { return this.type === T.CHR }
  isBlockDevice(): boolean { return this.type === T.BLK }
  isFIFO(): boolean { return this.type === T.FIFO }
  isSocket(): boolean { return this.type === T.SOCK }
}
