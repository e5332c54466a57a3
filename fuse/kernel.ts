/**
 * The FUSE kernel protocol (linux/fuse.h, protocol 7.x): the request header, and reply and
 * notification layouts as plain encoders (request bodies: requests.ts). Nothing here does I/O.
 */

export const FUSE_ROOT_ID = 1
export const KERNEL_MAJOR = 7
/** The newest minor version whose messages this module lays out; the kernel may speak an older one. */
export const KERNEL_MINOR = 31

export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42, READDIRPLUS: 44, RENAME2: 45,
} as const

/** fuse_init_in/out flags. */
export const INIT = {
  ASYNC_READ: 1 << 0,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  HANDLE_KILLPRIV_V2: 1 << 28,
  /** The reply's flags2 counts (fuse_init_out.flags2: the flags above bit 31). */
  INIT_EXT: 1 << 30,
} as const

/** fuse_init_in/out.flags2: the INIT flags from bit 32 on, shifted down by 32. */
export const INIT2 = {
  PASSTHROUGH: 1 << (37 - 32),
} as const

/** fuse_open_out.open_flags */
export const FOPEN = { KEEP_CACHE: 1 << 1, CACHE_DIR: 1 << 3, PASSTHROUGH: 1 << 7 } as const

/** fuse_setattr_in.valid */
export const FATTR = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11,
} as const

export const GETATTR_FH = 1
export const FSYNC_FDATASYNC = 1

export const IN_HEADER_SIZE = 40
const OUT_HEADER_SIZE = 16
const ATTR_SIZE = 88
const ENTRY_OUT_SIZE = 40 + ATTR_SIZE
const DIRENT_HEADER_SIZE = 24

export interface RequestHeader {
  len: number
  opcode: number
  unique: bigint
  nodeid: number
  uid: number
  gid: number
  pid: number
}

export function readHeader(buf: Buffer): RequestHeader {
  return {
    len: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: Number(buf.readBigUInt64LE(16)),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  }
}

/** What FUSE reports of an inode (struct fuse_attr). */
export interface Attr {
  ino: number
  size: number
  blocks: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  blksize: number
}

const NS = 1_000_000_000n

function writeTime(b: Buffer, ns: bigint, secAt: number, nsecAt: number): void {
  let sec = ns / NS
  let nsec = ns % NS
  if (nsec < 0n) { sec -= 1n; nsec += NS }
  b.writeBigInt64LE(sec, secAt)
  b.writeUInt32LE(Number(nsec), nsecAt)
}

function writeAttr(b: Buffer, at: number, a: Attr): void {
  b.writeBigUInt64LE(BigInt(a.ino), at)
  b.writeBigUInt64LE(BigInt(a.size), at + 8)
  b.writeBigUInt64LE(BigInt(a.blocks), at + 16)
  writeTime(b, a.atimeNs, at + 24, at + 48)
  writeTime(b, a.mtimeNs, at + 32, at + 52)
  writeTime(b, a.ctimeNs, at + 40, at + 56)
  b.writeUInt32LE(a.mode >>> 0, at + 60)
  b.writeUInt32LE(a.nlink >>> 0, at + 64)
  b.writeUInt32LE(a.uid >>> 0, at + 68)
  b.writeUInt32LE(a.gid >>> 0, at + 72)
  b.writeUInt32LE(a.rdev >>> 0, at + 76)
  b.writeUInt32LE(a.blksize, at + 80)
}

/** Seconds as the (u64 seconds, u32 nanoseconds) pair of a validity timeout. */
function writeTimeout(b: Buffer, seconds: number, secAt: number, nsecAt: number): void {
  const whole = Math.floor(seconds)
  b.writeBigUInt64LE(BigInt(whole), secAt)
  b.writeUInt32LE(Math.round((seconds - whole) * 1e9), nsecAt)
}

/** struct fuse_entry_out; nodeid 0 is a negative entry the kernel may cache for `entryTimeout`. */
export function entryOut(nodeid: number, attr: Attr | null, entryTimeout: number, attrTimeout: number): Buffer {
  const b = Buffer.alloc(ENTRY_OUT_SIZE)
  writeEntry(b, 0, nodeid, attr, entryTimeout, attrTimeout)
  return b
}

function writeEntry(b: Buffer, at: number, nodeid: number, attr: Attr | null, entryTimeout: number, attrTimeout: number): void {
  b.writeBigUInt64LE(BigInt(nodeid), at)
  writeTimeout(b, entryTimeout, at + 16, at + 32)
  if (!attr) return
  writeTimeout(b, attrTimeout, at + 24, at + 36)
  writeAttr(b, at + 40, attr)
}

/** struct fuse_attr_out */
export function attrOut(attr: Attr, attrTimeout: number): Buffer {
  const b = Buffer.alloc(16 + ATTR_SIZE)
  writeTimeout(b, attrTimeout, 0, 8)
  writeAttr(b, 16, attr)
  return b
}

/** struct fuse_open_out; `backingId` (7.40) names the host file of a FOPEN_PASSTHROUGH open. */
export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(16)
  b.writeBigUInt64LE(BigInt(fh), 0)
  b.writeUInt32LE(openFlags, 8)
  b.writeInt32LE(backingId, 12)
  return b
}

/** struct fuse_write_out */
export function writeOut(size: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(size, 0)
  return b
}

/** struct fuse_getxattr_out: the size a getxattr/listxattr with size 0 asks for. */
export function xattrSizeOut(size: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(size, 0)
  return b
}

export interface StatfsInfo {
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  bsize: number
  namelen: number
  frsize: number
}

/** struct fuse_statfs_out */
export function statfsOut(s: StatfsInfo): Buffer {
  const b = Buffer.alloc(80)
  b.writeBigUInt64LE(BigInt(s.blocks), 0)
  b.writeBigUInt64LE(BigInt(s.bfree), 8)
  b.writeBigUInt64LE(BigInt(s.bavail), 16)
  b.writeBigUInt64LE(BigInt(s.files), 24)
  b.writeBigUInt64LE(BigInt(s.ffree), 32)
  b.writeUInt32LE(s.bsize, 40)
  b.writeUInt32LE(s.namelen, 44)
  b.writeUInt32LE(s.frsize, 48)
  return b
}

export interface InitReply {
  minor: number
  maxReadahead: number
  flags: number
  maxBackground: number
  congestionThreshold: number
  maxWrite: number
  maxPages: number
  /** INIT2 flags; sent with INIT_EXT set in `flags`. */
  flags2?: number
  /** How many stacked file systems lie below, for passthrough (its backing files: 1). */
  maxStackDepth?: number
}

/** struct fuse_init_out (64 bytes since 7.23; older kernels take the first 24). */
export function initOut(r: InitReply): Buffer {
  const b = Buffer.alloc(r.minor >= 23 ? 64 : 24)
  b.writeUInt32LE(KERNEL_MAJOR, 0)
  b.writeUInt32LE(r.minor, 4)
  b.writeUInt32LE(r.maxReadahead, 8)
  b.writeUInt32LE(r.flags >>> 0, 12)
  b.writeUInt16LE(r.maxBackground, 16)
  b.writeUInt16LE(r.congestionThreshold, 18)
  b.writeUInt32LE(r.maxWrite, 20)
  if (b.length >= 64) {
    b.writeUInt32LE(1, 24) // time_gran: nanoseconds
    b.writeUInt16LE(r.maxPages, 28)
    b.writeUInt32LE(r.flags2 ?? 0, 32)
    b.writeUInt32LE(r.maxStackDepth ?? 0, 36)
  }
  return b
}

/** One entry of a READDIR (plus: a READDIRPLUS) reply. */
export interface DirEntryOut {
  name: string
  ino: number
  /** DT_* type (mode >> 12). */
  type: number
  /** The offset the kernel passes back to continue after this entry. */
  off: number
  /** READDIRPLUS only: the entry's lookup reply (nodeid 0: none). */
  nodeid?: number
  attr?: Attr | null
}

const align8 = (n: number): number => (n + 7) & ~7

/** Packs entries while they fit in `size` bytes; returns the buffer and how many were taken. */
export function packDirents(entries: DirEntryOut[], size: number, plus: boolean, entryTimeout: number, attrTimeout: number): { buf: Buffer; count: number } {
  const parts: Buffer[] = []
  let used = 0
  let count = 0
  for (const e of entries) {
    const name = Buffer.from(e.name)
    const head = plus ? ENTRY_OUT_SIZE : 0
    const len = head + align8(DIRENT_HEADER_SIZE + name.length)
    if (used + len > size) break
    const b = Buffer.alloc(len)
    if (plus) writeEntry(b, 0, e.nodeid ?? 0, e.attr ?? null, entryTimeout, attrTimeout)
    b.writeBigUInt64LE(BigInt(e.ino), head)
    b.writeBigUInt64LE(BigInt(e.off), head + 8)
    b.writeUInt32LE(name.length, head + 16)
    b.writeUInt32LE(e.type, head + 20)
    name.copy(b, head + DIRENT_HEADER_SIZE)
    parts.push(b)
    used += len
    count++
  }
  return { buf: Buffer.concat(parts, used), count }
}

/** fuse_out_header at the start of `b`. */
function writeOutHeader(b: Buffer, len: number, errno: number, unique: bigint): void {
  b.writeUInt32LE(len, 0)
  b.writeInt32LE(errno === 0 ? 0 : -errno, 4)
  b.writeBigUInt64LE(unique, 8)
}

/** A reply: header plus body, written to the device in one write(2). */
export function reply(unique: bigint, errno: number, body?: Buffer | Buffer[]): Buffer {
  const parts = body === undefined ? [] : Array.isArray(body) ? body : [body]
  const len = OUT_HEADER_SIZE + parts.reduce((n, p) => n + p.length, 0)
  const b = Buffer.allocUnsafe(len)
  writeOutHeader(b, len, errno, unique)
  let at = OUT_HEADER_SIZE
  for (const p of parts) { p.copy(b, at); at += p.length }
  return b
}

/** A successful reply as pieces for one writev(2): its header, then the body as given (not copied). */
export function replyParts(unique: bigint, body: Buffer[]): Buffer[] {
  const header = Buffer.allocUnsafe(OUT_HEADER_SIZE)
  writeOutHeader(header, OUT_HEADER_SIZE + body.reduce((n, p) => n + p.length, 0), 0, unique)
  return [header, ...body]
}

/**
 * FUSE_NOTIFY_INVAL_INODE: the kernel drops the attributes and cached data of `nodeid`; with
 * `attrsOnly`, the attributes alone (a negative offset), which takes no page lock in the kernel
 * and so may be sent while a request on the inode still waits for its reply.
 */
export function notifyInvalInode(nodeid: number, attrsOnly = false): Buffer {
  const b = Buffer.alloc(16 + 24)
  b.writeUInt32LE(b.length, 0)
  b.writeInt32LE(2, 4) // the notification code, in place of an error
  b.writeBigUInt64LE(0n, 8)
  b.writeBigUInt64LE(BigInt(nodeid), 16)
  b.writeBigInt64LE(attrsOnly ? -1n : 0n, 24) // from offset 0, or no data at all
  b.writeBigInt64LE(0n, 32) // to the end
  return b
}
