/**
 * FUSE request bodies (linux/fuse.h, protocol 7.31) as typed structs: one pure decoder per
 * layout, which reads every field the kernel sends, whether or not a handler uses it today, so a
 * handler that starts to need one reads a field rather than an offset. Bodies come after the
 * 40-byte fuse_in_header (kernel.ts); fixed fields first, then NUL-terminated names or data.
 *
 * u64 fields that count bytes or name handles and inodes are numbers (they stay far below 2^53);
 * opaque ones (lock owners, `unique`) and times in seconds are bigints, as they may use all 64 bits.
 */

/** A request body with a read position: fixed fields first, then NUL-terminated names. */
export class BodyReader {
  private pos = 0
  constructor(private readonly buf: Buffer) {}
  get remaining(): number { return this.buf.length - this.pos }
  u32(): number { const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v }
  u64(): number { const v = Number(this.buf.readBigUInt64LE(this.pos)); this.pos += 8; return v }
  u64n(): bigint { const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v }
  i64(): bigint { const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v }
  skip(n: number): this { this.pos += n; return this }
  /** A NUL-terminated string. Names on the wire are bytes; Strata's names are UTF-8. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos)
    const stop = end < 0 ? this.buf.length : end
    const s = this.buf.toString('utf8', this.pos, stop)
    this.pos = stop + 1
    return s
  }
  /** The next `n` bytes as a view of the request buffer (not a copy). */
  bytes(n: number): Buffer { const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b }
}

/** READLINK, STATFS, DESTROY: no body. */
export type EmptyIn = Record<string, never>
const EMPTY: EmptyIn = Object.freeze({})
export const decodeEmpty = (): EmptyIn => EMPTY

/** A name alone: LOOKUP, UNLINK, RMDIR (an entry of the directory `nodeid`), REMOVEXATTR (an xattr). */
export interface NameIn { name: string }
export type LookupIn = NameIn
export type UnlinkIn = NameIn
export type RmdirIn = NameIn
export type RemovexattrIn = NameIn

export function decodeName(body: Buffer): NameIn {
  return { name: new BodyReader(body).cstring() }
}

/** fuse_forget_in */
export interface ForgetIn { nlookup: number }

export function decodeForget(body: Buffer): ForgetIn {
  return { nlookup: new BodyReader(body).u64() }
}

/** fuse_batch_forget_in { count, dummy }, then `count` fuse_forget_one { nodeid, nlookup }. */
export interface BatchForgetIn { forgets: { nodeid: number; nlookup: number }[] }

export function decodeBatchForget(body: Buffer): BatchForgetIn {
  const r = new BodyReader(body)
  const count = r.u32()
  r.skip(4)
  const forgets: BatchForgetIn['forgets'] = []
  for (let i = 0; i < count; i++) forgets.push({ nodeid: r.u64(), nlookup: r.u64() })
  return { forgets }
}

/** fuse_interrupt_in: the `unique` of the request to interrupt. */
export interface InterruptIn { unique: bigint }

export function decodeInterrupt(body: Buffer): InterruptIn {
  return { unique: new BodyReader(body).u64n() }
}

/** fuse_getattr_in; `fh` counts only with GETATTR_FH in `flags` (an fstat). */
export interface GetattrIn { flags: number; fh: number }

export function decodeGetattr(body: Buffer): GetattrIn {
  const r = new BodyReader(body)
  const flags = r.u32()
  r.skip(4) // dummy
  return { flags, fh: r.u64() }
}

/** fuse_setattr_in (88 bytes); `valid` (FATTR.*) says which of the other fields count. */
export interface SetattrIn {
  valid: number
  fh: number
  size: number
  lockOwner: bigint
  /** Seconds; signed on the kernel's side (times before 1970). */
  atime: bigint
  mtime: bigint
  ctime: bigint
  atimensec: number
  mtimensec: number
  ctimensec: number
  mode: number
  uid: number
  gid: number
}

export function decodeSetattr(body: Buffer): SetattrIn {
  const r = new BodyReader(body)
  const valid = r.u32()
  r.skip(4) // padding
  const fh = r.u64()
  const size = r.u64()
  const lockOwner = r.u64n()
  const atime = r.i64()
  const mtime = r.i64()
  const ctime = r.i64()
  const atimensec = r.u32()
  const mtimensec = r.u32()
  const ctimensec = r.u32()
  const mode = r.u32()
  r.skip(4) // unused4
  const uid = r.u32()
  const gid = r.u32()
  return { valid, fh, size, lockOwner, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, uid, gid }
}

/** SYMLINK: the new entry's name, then the link's target. */
export interface SymlinkIn { name: string; target: string }

export function decodeSymlink(body: Buffer): SymlinkIn {
  const r = new BodyReader(body)
  const name = r.cstring()
  return { name, target: r.cstring() }
}

/** fuse_mknod_in, then the name. `umask` is the caller's, already applied to `mode` unless FUSE_DONT_MASK was agreed. */
export interface MknodIn { mode: number; rdev: number; umask: number; name: string }

export function decodeMknod(body: Buffer): MknodIn {
  const r = new BodyReader(body)
  const mode = r.u32()
  const rdev = r.u32()
  const umask = r.u32()
  r.skip(4) // padding
  return { mode, rdev, umask, name: r.cstring() }
}

/** fuse_mkdir_in, then the name. */
export interface MkdirIn { mode: number; umask: number; name: string }

export function decodeMkdir(body: Buffer): MkdirIn {
  const r = new BodyReader(body)
  const mode = r.u32()
  const umask = r.u32()
  return { mode, umask, name: r.cstring() }
}

/** RENAME and RENAME2 in one shape: `name` in the request's directory to `newName` in `newDir`; `flags` are renameat2's (0 for RENAME). */
export interface RenameIn { newDir: number; flags: number; name: string; newName: string }

/** fuse_rename_in { newdir }, then both names. */
export function decodeRename(body: Buffer): RenameIn {
  const r = new BodyReader(body)
  const newDir = r.u64()
  const name = r.cstring()
  return { newDir, flags: 0, name, newName: r.cstring() }
}

/** fuse_rename2_in { newdir, flags, padding }, then both names. */
export function decodeRename2(body: Buffer): RenameIn {
  const r = new BodyReader(body)
  const newDir = r.u64()
  const flags = r.u32()
  r.skip(4) // padding
  const name = r.cstring()
  return { newDir, flags, name, newName: r.cstring() }
}

/** fuse_link_in { oldnodeid }, then the new name (in the request's directory). */
export interface LinkIn { oldNodeid: number; name: string }

export function decodeLink(body: Buffer): LinkIn {
  const r = new BodyReader(body)
  const oldNodeid = r.u64()
  return { oldNodeid, name: r.cstring() }
}

/** fuse_open_in (OPEN, OPENDIR): open(2)'s flags, and FUSE_OPEN_* flags of the kernel's own. */
export interface OpenIn { flags: number; openFlags: number }

export function decodeOpen(body: Buffer): OpenIn {
  const r = new BodyReader(body)
  const flags = r.u32()
  return { flags, openFlags: r.u32() }
}

/** fuse_create_in, then the name. */
export interface CreateIn { flags: number; mode: number; umask: number; openFlags: number; name: string }

export function decodeCreate(body: Buffer): CreateIn {
  const r = new BodyReader(body)
  const flags = r.u32()
  const mode = r.u32()
  const umask = r.u32()
  const openFlags = r.u32()
  return { flags, mode, umask, openFlags, name: r.cstring() }
}

/** fuse_read_in (40 bytes): READ, and READDIR/READDIRPLUS (whose `offset` is a listing position). */
export interface ReadIn {
  fh: number
  offset: number
  size: number
  /** FUSE_READ_LOCKOWNER: `lockOwner` is set. */
  readFlags: number
  lockOwner: bigint
  /** The file's open(2) flags. */
  flags: number
}
export type ReaddirIn = ReadIn

export function decodeRead(body: Buffer): ReadIn {
  const r = new BodyReader(body)
  const fh = r.u64()
  const offset = r.u64()
  const size = r.u32()
  const readFlags = r.u32()
  const lockOwner = r.u64n()
  const flags = r.u32()
  return { fh, offset, size, readFlags, lockOwner, flags }
}

/** fuse_write_in (40 bytes), then `size` bytes of data. */
export interface WriteIn {
  fh: number
  offset: number
  size: number
  /** FUSE_WRITE_CACHE, FUSE_WRITE_LOCKOWNER, FUSE_WRITE_KILL_SUIDGID. */
  writeFlags: number
  lockOwner: bigint
  /** The file's open(2) flags. */
  flags: number
  /**
   * The data: a copy up to WRITE_COPY_MAX bytes, so the request buffer serves the next request;
   * above it a view of the request buffer, which must then outlive the write (see `writeKeepsBody`).
   */
  data: Buffer
}

/**
 * Writes up to this size are copied out of their request buffer (which holds a whole max_write
 * request): the engine keeps written data until it is flushed, and a view would keep the whole
 * buffer with it, a new one allocated for each small file an untar writes.
 */
export const WRITE_COPY_MAX = 128 * 1024

/** Whether a decoded WRITE still refers to its request buffer. */
export const writeKeepsBody = (r: WriteIn): boolean => r.size > WRITE_COPY_MAX

export function decodeWrite(body: Buffer): WriteIn {
  const r = new BodyReader(body)
  const fh = r.u64()
  const offset = r.u64()
  const size = r.u32()
  const writeFlags = r.u32()
  const lockOwner = r.u64n()
  const flags = r.u32()
  r.skip(4) // padding
  const data = r.bytes(size)
  return { fh, offset, size, writeFlags, lockOwner, flags, data: size > WRITE_COPY_MAX ? data : Buffer.from(data) }
}

/** fuse_release_in (RELEASE, RELEASEDIR). */
export interface ReleaseIn {
  fh: number
  /** The file's open(2) flags. */
  flags: number
  /** FUSE_RELEASE_FLUSH, FUSE_RELEASE_FLOCK_UNLOCK. */
  releaseFlags: number
  lockOwner: bigint
}

export function decodeRelease(body: Buffer): ReleaseIn {
  const r = new BodyReader(body)
  const fh = r.u64()
  const flags = r.u32()
  const releaseFlags = r.u32()
  return { fh, flags, releaseFlags, lockOwner: r.u64n() }
}

/** fuse_flush_in: close(2) of one descriptor of an open file. */
export interface FlushIn { fh: number; lockOwner: bigint }

export function decodeFlush(body: Buffer): FlushIn {
  const r = new BodyReader(body)
  const fh = r.u64()
  r.skip(8) // unused, padding
  return { fh, lockOwner: r.u64n() }
}

/** fuse_fsync_in (FSYNC, FSYNCDIR); FSYNC_FDATASYNC in `fsyncFlags` for fdatasync(2). */
export interface FsyncIn { fh: number; fsyncFlags: number }

export function decodeFsync(body: Buffer): FsyncIn {
  const r = new BodyReader(body)
  const fh = r.u64()
  return { fh, fsyncFlags: r.u32() }
}

/**
 * fuse_setxattr_in { size, flags } as sent without FUSE_SETXATTR_EXT (not agreed at INIT: with it
 * the struct grows by setxattr_flags and padding), then the name and `size` bytes of value.
 */
export interface SetxattrIn { size: number; flags: number; name: string; value: Buffer }

export function decodeSetxattr(body: Buffer): SetxattrIn {
  const r = new BodyReader(body)
  const size = r.u32()
  const flags = r.u32()
  const name = r.cstring()
  // a copy: the request buffer goes back to the reader while the engine may still hold the value
  return { size, flags, name, value: Buffer.from(r.bytes(size)) }
}

/** fuse_getxattr_in { size, padding }, then the name; size 0 asks for the value's size. */
export interface GetxattrIn { size: number; name: string }

export function decodeGetxattr(body: Buffer): GetxattrIn {
  const r = new BodyReader(body)
  const size = r.u32()
  r.skip(4) // padding
  return { size, name: r.cstring() }
}

/** fuse_getxattr_in without a name; size 0 asks for the list's size. */
export interface ListxattrIn { size: number }

export function decodeListxattr(body: Buffer): ListxattrIn {
  return { size: new BodyReader(body).u32() }
}

/** fuse_access_in { mask, padding }: access(2)'s R_OK/W_OK/X_OK. */
export interface AccessIn { mask: number }

export function decodeAccess(body: Buffer): AccessIn {
  return { mask: new BodyReader(body).u32() }
}

/** fuse_init_in: 16 bytes up to 7.35; from 7.36 on, `flags2` (the upper 32 flags) and 44 unused bytes. */
export interface InitIn { major: number; minor: number; maxReadahead: number; flags: number; flags2: number }

export function decodeInit(body: Buffer): InitIn {
  const r = new BodyReader(body)
  const major = r.u32()
  const minor = r.u32()
  const maxReadahead = r.u32()
  const flags = r.u32()
  return { major, minor, maxReadahead, flags, flags2: r.remaining >= 4 ? r.u32() : 0 }
}

/**
 * A decoded request for STRATA_FUSE_TRACE: fields as `name=value`, flags in hex and modes in octal
 * as linux/fuse.h and open(2) spell them, data as its length (a WRITE's payload is not printed).
 */
export function describeRequest(req: object): string {
  const fields: string[] = []
  for (const [k, v] of Object.entries(req)) {
    if (typeof v === 'number' && (k === 'valid' || /flags2?$/i.test(k))) fields.push(`${k}=0x${v.toString(16)}`)
    else if (typeof v === 'number' && (k === 'mode' || k === 'umask')) fields.push(`${k}=0o${v.toString(8)}`)
    else if (Buffer.isBuffer(v)) fields.push(`${k}=<${v.length} bytes>`)
    else if (Array.isArray(v)) fields.push(`${k}=[${v.map((e: object) => `{${describeRequest(e)}}`).join(' ')}]`)
    else if (typeof v === 'string') fields.push(`${k}=${JSON.stringify(v)}`)
    else fields.push(`${k}=${String(v)}`)
  }
  return fields.join(' ')
}
