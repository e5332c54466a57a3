import { test } from 'node:test'
import assert from 'node:assert/strict'
import { OP } from '../fuse/kernel.js'
import { opcodeOf } from '../fuse/opcodes.js'
import {
  decodeAccess, decodeBatchForget, decodeCreate, decodeFlush, decodeForget, decodeFsync, decodeGetattr, decodeGetxattr,
  decodeInit, decodeInterrupt, decodeLink, decodeListxattr, decodeMkdir, decodeMknod, decodeName, decodeOpen, decodeRead,
  decodeRelease, decodeRename, decodeRename2, decodeSetattr, decodeSetxattr, decodeSymlink, decodeWrite, describeRequest, writeKeepsBody, WRITE_COPY_MAX,
} from '../fuse/requests.js'

/*
 * Request bodies laid out by hand at the offsets of linux/fuse.h (each struct is quoted above its
 * test). Every field gets a distinct value, 64-bit fields use their high halves, and the buffer
 * starts filled with 0xa5, so padding is never zero: a decoder reading a field at a wrong offset,
 * with a wrong width, or from padding gets a wrong value.
 */

const FILL = 0xa5

/** A body of `size` fixed bytes (filled with FILL), followed by NUL-terminated strings and raw bytes. */
function body(size: number, tail: (string | Buffer)[] = []): Buffer {
  const fixed = Buffer.alloc(size, FILL)
  return Buffer.concat([fixed, ...tail.map((t) => (typeof t === 'string' ? Buffer.from(`${t}\0`) : t))])
}

const u32 = (b: Buffer, at: number, v: number): void => { b.writeUInt32LE(v, at) }
const u64 = (b: Buffer, at: number, v: bigint): void => { b.writeBigUInt64LE(v, at) }
const i64 = (b: Buffer, at: number, v: bigint): void => { b.writeBigInt64LE(v, at) }

/** A lock owner as the kernel makes them (a hashed pointer): all 64 bits in use. */
const OWNER = 0xfedcba9876543210n

test('name-only bodies: LOOKUP, UNLINK, RMDIR, REMOVEXATTR', () => {
  assert.deepEqual(decodeName(body(0, ['file.txt'])), { name: 'file.txt' })
  assert.deepEqual(decodeName(body(0, ['ü-ñame'])), { name: 'ü-ñame' })
})

// struct fuse_forget_in { uint64_t nlookup; }
test('fuse_forget_in', () => {
  const b = body(8)
  u64(b, 0, 0x1_0000_0003n)
  assert.deepEqual(decodeForget(b), { nlookup: 0x1_0000_0003 })
})

// struct fuse_batch_forget_in { uint32_t count; uint32_t dummy; }  struct fuse_forget_one { uint64_t nodeid; uint64_t nlookup; }
test('fuse_batch_forget_in and its fuse_forget_one entries', () => {
  const b = body(8 + 3 * 16)
  u32(b, 0, 3)
  for (let i = 0; i < 3; i++) {
    u64(b, 8 + i * 16, BigInt(0x1_0000_0000 + i))
    u64(b, 8 + i * 16 + 8, BigInt(10 + i))
  }
  assert.deepEqual(decodeBatchForget(b), {
    forgets: [
      { nodeid: 0x1_0000_0000, nlookup: 10 },
      { nodeid: 0x1_0000_0001, nlookup: 11 },
      { nodeid: 0x1_0000_0002, nlookup: 12 },
    ],
  })
})

// struct fuse_interrupt_in { uint64_t unique; }
test('fuse_interrupt_in', () => {
  const b = body(8)
  u64(b, 0, 0xffff_0000_1234_5678n)
  assert.deepEqual(decodeInterrupt(b), { unique: 0xffff_0000_1234_5678n })
})

// struct fuse_getattr_in { uint32_t getattr_flags; uint32_t dummy; uint64_t fh; }
test('fuse_getattr_in', () => {
  const b = body(16)
  u32(b, 0, 1)
  u64(b, 8, 0x2_0000_0007n)
  assert.deepEqual(decodeGetattr(b), { flags: 1, fh: 0x2_0000_0007 })
})

/*
 * struct fuse_setattr_in {
 *   uint32_t valid; uint32_t padding; uint64_t fh; uint64_t size; uint64_t lock_owner;
 *   uint64_t atime; uint64_t mtime; uint64_t ctime;
 *   uint32_t atimensec; uint32_t mtimensec; uint32_t ctimensec;
 *   uint32_t mode; uint32_t unused4; uint32_t uid; uint32_t gid; uint32_t unused5;
 * }  (88 bytes)
 */
test('fuse_setattr_in', () => {
  const b = body(88)
  u32(b, 0, 0x1ff)
  u64(b, 8, 0x3_0000_0009n)
  u64(b, 16, 0x5_0000_0001n)
  u64(b, 24, OWNER)
  i64(b, 32, -86_400n) // a day before 1970
  i64(b, 40, 0x1_2345_6789n)
  i64(b, 48, 1_700_000_000n)
  u32(b, 56, 111_111_111)
  u32(b, 60, 222_222_222)
  u32(b, 64, 333_333_333)
  u32(b, 68, 0o104755)
  u32(b, 76, 1001)
  u32(b, 80, 2002)
  assert.deepEqual(decodeSetattr(b), {
    valid: 0x1ff, fh: 0x3_0000_0009, size: 0x5_0000_0001, lockOwner: OWNER,
    atime: -86_400n, mtime: 0x1_2345_6789n, ctime: 1_700_000_000n,
    atimensec: 111_111_111, mtimensec: 222_222_222, ctimensec: 333_333_333,
    mode: 0o104755, uid: 1001, gid: 2002,
  })
})

test('SYMLINK: the name, then the target', () => {
  assert.deepEqual(decodeSymlink(body(0, ['link', '../some/target'])), { name: 'link', target: '../some/target' })
})

// struct fuse_mknod_in { uint32_t mode; uint32_t rdev; uint32_t umask; uint32_t padding; }, then the name
test('fuse_mknod_in', () => {
  const b = body(16, ['fifo'])
  u32(b, 0, 0o10644)
  u32(b, 4, 0x0801)
  u32(b, 8, 0o022)
  assert.deepEqual(decodeMknod(b), { mode: 0o10644, rdev: 0x0801, umask: 0o022, name: 'fifo' })
})

// struct fuse_mkdir_in { uint32_t mode; uint32_t umask; }, then the name
test('fuse_mkdir_in', () => {
  const b = body(8, ['dir'])
  u32(b, 0, 0o40755)
  u32(b, 4, 0o027)
  assert.deepEqual(decodeMkdir(b), { mode: 0o40755, umask: 0o027, name: 'dir' })
})

// struct fuse_rename_in { uint64_t newdir; }, then the old and new names
test('fuse_rename_in: flags 0', () => {
  const b = body(8, ['old', 'new'])
  u64(b, 0, 0x1_0000_0042n)
  assert.deepEqual(decodeRename(b), { newDir: 0x1_0000_0042, flags: 0, name: 'old', newName: 'new' })
})

// struct fuse_rename2_in { uint64_t newdir; uint32_t flags; uint32_t padding; }, then the old and new names
test('fuse_rename2_in: the same shape as RENAME, with renameat2 flags', () => {
  const b = body(16, ['a', 'bb'])
  u64(b, 0, 0x1_0000_0043n)
  u32(b, 8, 2) // RENAME_EXCHANGE
  assert.deepEqual(decodeRename2(b), { newDir: 0x1_0000_0043, flags: 2, name: 'a', newName: 'bb' })
})

// struct fuse_link_in { uint64_t oldnodeid; }, then the new name
test('fuse_link_in', () => {
  const b = body(8, ['hardlink'])
  u64(b, 0, 0x7_0000_0005n)
  assert.deepEqual(decodeLink(b), { oldNodeid: 0x7_0000_0005, name: 'hardlink' })
})

// struct fuse_open_in { uint32_t flags; uint32_t open_flags; }
test('fuse_open_in (OPEN, OPENDIR)', () => {
  const b = body(8)
  u32(b, 0, 0o1102) // O_RDWR | O_CREAT | O_TRUNC
  u32(b, 4, 1) // FUSE_OPEN_KILL_SUIDGID
  assert.deepEqual(decodeOpen(b), { flags: 0o1102, openFlags: 1 })
})

// struct fuse_create_in { uint32_t flags; uint32_t mode; uint32_t umask; uint32_t open_flags; }, then the name
test('fuse_create_in', () => {
  const b = body(16, ['new.txt'])
  u32(b, 0, 0o301) // O_WRONLY | O_CREAT | O_EXCL
  u32(b, 4, 0o100640)
  u32(b, 8, 0o022)
  u32(b, 12, 1)
  assert.deepEqual(decodeCreate(b), { flags: 0o301, mode: 0o100640, umask: 0o022, openFlags: 1, name: 'new.txt' })
})

/*
 * struct fuse_read_in {
 *   uint64_t fh; uint64_t offset; uint32_t size; uint32_t read_flags; uint64_t lock_owner; uint32_t flags; uint32_t padding;
 * }  (40 bytes: READ, READDIR, READDIRPLUS)
 */
test('fuse_read_in', () => {
  const b = body(40)
  u64(b, 0, 0x1_0000_0011n)
  u64(b, 8, 0x10_0000_0000n)
  u32(b, 16, 1 << 20)
  u32(b, 20, 2) // FUSE_READ_LOCKOWNER
  u64(b, 24, OWNER)
  u32(b, 32, 0o100002)
  assert.deepEqual(decodeRead(b), { fh: 0x1_0000_0011, offset: 0x10_0000_0000, size: 1 << 20, readFlags: 2, lockOwner: OWNER, flags: 0o100002 })
})

/*
 * struct fuse_write_in {
 *   uint64_t fh; uint64_t offset; uint32_t size; uint32_t write_flags; uint64_t lock_owner; uint32_t flags; uint32_t padding;
 * }  (40 bytes), then `size` bytes of data
 */
test('fuse_write_in and its data', () => {
  const data = Buffer.from('payload bytes\0with a NUL')
  const b = body(40, [data])
  u64(b, 0, 0x1_0000_0012n)
  u64(b, 8, 0x3_0000_0000n)
  u32(b, 16, data.length)
  u32(b, 20, 4) // FUSE_WRITE_KILL_SUIDGID
  u64(b, 24, OWNER)
  u32(b, 32, 0o2001) // O_WRONLY | O_APPEND
  const w = decodeWrite(b)
  assert.deepEqual({ ...w, data: null }, { fh: 0x1_0000_0012, offset: 0x3_0000_0000, size: data.length, writeFlags: 4, lockOwner: OWNER, flags: 0o2001, data: null })
  assert.ok(w.data.equals(data))
  // a small write is copied out: the request buffer goes back to the reader
  assert.equal(writeKeepsBody(w), false)
  b.fill(0, 40)
  assert.ok(w.data.equals(data), 'the copy outlives the request buffer')
})

test('fuse_write_in with more than WRITE_COPY_MAX bytes keeps a view of its request', () => {
  const data = Buffer.alloc(WRITE_COPY_MAX + 1, 7)
  const b = body(40, [data])
  u32(b, 16, data.length)
  const w = decodeWrite(b)
  assert.ok(w.data.equals(data))
  // the dispatcher keeps that buffer for the engine (never recycled)
  assert.equal(writeKeepsBody(w), true)
  assert.equal(w.data.buffer, b.buffer)
  assert.equal(w.data.byteOffset, b.byteOffset + 40)
})

// struct fuse_release_in { uint64_t fh; uint32_t flags; uint32_t release_flags; uint64_t lock_owner; }  (RELEASE, RELEASEDIR)
test('fuse_release_in', () => {
  const b = body(24)
  u64(b, 0, 0x1_0000_0013n)
  u32(b, 8, 0o100001)
  u32(b, 12, 1) // FUSE_RELEASE_FLUSH
  u64(b, 16, OWNER)
  assert.deepEqual(decodeRelease(b), { fh: 0x1_0000_0013, flags: 0o100001, releaseFlags: 1, lockOwner: OWNER })
})

// struct fuse_flush_in { uint64_t fh; uint32_t unused; uint32_t padding; uint64_t lock_owner; }
test('fuse_flush_in', () => {
  const b = body(24)
  u64(b, 0, 0x1_0000_0014n)
  u64(b, 16, OWNER)
  assert.deepEqual(decodeFlush(b), { fh: 0x1_0000_0014, lockOwner: OWNER })
})

// struct fuse_fsync_in { uint64_t fh; uint32_t fsync_flags; uint32_t padding; }  (FSYNC, FSYNCDIR)
test('fuse_fsync_in', () => {
  const b = body(16)
  u64(b, 0, 0x1_0000_0015n)
  u32(b, 8, 1) // FUSE_FSYNC_FDATASYNC
  assert.deepEqual(decodeFsync(b), { fh: 0x1_0000_0015, fsyncFlags: 1 })
})

// struct fuse_setxattr_in { uint32_t size; uint32_t flags; } (without FUSE_SETXATTR_EXT), then the name and the value
test('fuse_setxattr_in, its name and value', () => {
  const value = Buffer.from([0, 1, 2, 0, 0xff])
  const b = body(8, ['user.k', value])
  u32(b, 0, value.length)
  u32(b, 4, 2) // XATTR_REPLACE
  const x = decodeSetxattr(b)
  assert.deepEqual({ ...x, value: null }, { size: value.length, flags: 2, name: 'user.k', value: null })
  assert.ok(x.value.equals(value))
  // a copy: the request's buffer is reused once the request is answered
  b.fill(0)
  assert.ok(x.value.equals(value))
})

// struct fuse_getxattr_in { uint32_t size; uint32_t padding; }, then the name (GETXATTR) or nothing (LISTXATTR)
test('fuse_getxattr_in (GETXATTR, LISTXATTR)', () => {
  const b = body(8, ['security.selinux'])
  u32(b, 0, 0x1_0000)
  assert.deepEqual(decodeGetxattr(b), { size: 0x1_0000, name: 'security.selinux' })
  const l = body(8)
  u32(l, 0, 0)
  assert.deepEqual(decodeListxattr(l), { size: 0 })
})

// struct fuse_access_in { uint32_t mask; uint32_t padding; }
test('fuse_access_in', () => {
  const b = body(8)
  u32(b, 0, 6) // R_OK | W_OK
  assert.deepEqual(decodeAccess(b), { mask: 6 })
})

/*
 * struct fuse_init_in {
 *   uint32_t major; uint32_t minor; uint32_t max_readahead; uint32_t flags;
 *   uint32_t flags2; uint32_t unused[11];   (since 7.36; older kernels send the first 16 bytes)
 * }
 */
test('fuse_init_in, old and new', () => {
  const b = body(64)
  u32(b, 0, 7)
  u32(b, 4, 41)
  u32(b, 8, 0x2_0000)
  u32(b, 12, 0x8000_0001)
  u32(b, 16, 0x0000_0040)
  assert.deepEqual(decodeInit(b), { major: 7, minor: 41, maxReadahead: 0x2_0000, flags: 0x8000_0001, flags2: 0x40 })
  assert.deepEqual(decodeInit(b.subarray(0, 16)), { major: 7, minor: 41, maxReadahead: 0x2_0000, flags: 0x8000_0001, flags2: 0 })
})

test('a body shorter than its struct fails to decode (answered EIO), not read past its end', () => {
  assert.throws(() => decodeWrite(body(35)), RangeError)
  assert.throws(() => decodeSetattr(body(80)), RangeError)
})

test('the opcode table: every opcode by its name in linux/fuse.h, and what gets no reply', () => {
  for (const [name, code] of Object.entries(OP)) assert.equal(opcodeOf(code)?.name, name)
  assert.equal(opcodeOf(39), undefined) // FUSE_IOCTL: answered ENOSYS
  const unanswered = Object.entries(OP).filter(([, code]) => opcodeOf(code)?.unanswered).map(([name]) => name)
  assert.deepEqual(unanswered.sort(), ['BATCH_FORGET', 'FORGET', 'INTERRUPT'])
  const keepsBody = Object.entries(OP).filter(([, code]) => { const op = opcodeOf(code); return op !== undefined && !op.unanswered && op.keepsBody }).map(([name]) => name)
  assert.deepEqual(keepsBody, ['WRITE'])
})

test('a traced request shows its fields, and a payload by its length alone', () => {
  const b = body(40, [Buffer.alloc(5)])
  u64(b, 0, 3n)
  u64(b, 8, 0n)
  u32(b, 16, 5)
  u32(b, 20, 0)
  u64(b, 24, 0n)
  u32(b, 32, 1)
  assert.equal(describeRequest(decodeWrite(b)), 'fh=3 offset=0 size=5 writeFlags=0x0 lockOwner=0 flags=0x1 data=<5 bytes>')
  const m = body(8, ['d'])
  u32(m, 0, 0o40755)
  u32(m, 4, 0o22)
  assert.equal(describeRequest(decodeMkdir(m)), 'mode=0o40755 umask=0o22 name="d"')
  assert.equal(describeRequest(decodeName(body(0, ['a b']))), 'name="a b"')
})
