import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import type { HostStamp, InodeRecord } from '../store/records.js'
import type { AttrChange, NewObject } from '../overlay/populate.js'
import { fromNs, toNs } from '../overlay/stats.js'
import { CHUNK_SIZE, REF_SIZE, isHole, type ChunkStore } from '../store/chunks.js'
import { loadRefs } from '../store/filedata.js'
import type { HostEntry } from '../host/scan.js'
import { sameXattrs, type Xattrs } from '../host/xattrs.js'
import { IO_BYTES, ZERO_CHUNK, readFull } from '../host/io.js'

/** Host objects as stored records: their attributes, and whether the store holds one already. */

export const stampOf = (e: HostEntry): HostStamp => [e.dev, e.ino, e.size, e.mtimeNs.toString(), e.ctimeNs.toString()]

/** The stamp says the content is what was imported: same inode, size and mtime. */
export const sameContentStamp = (o: HostStamp, e: HostEntry): boolean =>
  o[0] === e.dev && o[1] === e.ino && o[2] === e.size && o[3] === e.mtimeNs.toString()

/** ctime moves with every attribute change: a stamp equal in it too means nothing at all changed. */
export const sameStamp = (o: HostStamp, e: HostEntry): boolean => sameContentStamp(o, e) && o[4] === e.ctimeNs.toString()

/** Attributes the host shows, against a record; atime alone is not a change (reads move it). */
export function sameAttrs(rec: InodeRecord, e: HostEntry, xattrs: Xattrs | undefined): boolean {
  return rec.mode === e.mode && rec.uid === e.uid && rec.gid === e.gid && sameMtime(toNs(rec.mtime), e.mtimeNs)
    && (xattrs === undefined || sameXattrs(rec.xattrs, xattrs))
}

/**
 * A host mtime equal to the stored one cut to whole microseconds is the stored one as checkout
 * wrote it (Node sets times to the microsecond): a tree checked out and imported again is
 * unchanged, not touched everywhere.
 */
const sameMtime = (stored: bigint, host: bigint): boolean => stored === host || (host % 1000n === 0n && stored >= 0n && stored - (stored % 1000n) === host)

/**
 * Whether the host file holds the stored file's bytes, for files without a matching stamp (a
 * tree checked out and edited elsewhere has new inodes): reading and comparing costs no layer
 * record, where storing the file again would. Stops at the first difference. `buf` is IO_BYTES.
 */
export async function sameHostData(e: HostEntry, rec: InodeRecord, chunks: ChunkStore, buf: Buffer): Promise<boolean> {
  const refs = rec.inline ? undefined : await loadRefs(rec, chunks, { path: e.path })
  const src = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    for (let pos = 0; pos < e.size; pos += IO_BYTES) {
      const n = await readFull(src, buf, pos)
      if (n !== Math.min(IO_BYTES, e.size - pos)) return false
      if (rec.inline) return buf.subarray(0, n).equals(rec.inline)
      const first = pos / CHUNK_SIZE
      const count = Math.ceil(n / CHUNK_SIZE)
      const wanted = Array.from({ length: count }, (_, i) => refs!.subarray((first + i) * REF_SIZE, (first + i + 1) * REF_SIZE))
      if (wanted.some((r) => r.length < REF_SIZE)) return false
      const stored = await chunks.getMany(wanted.filter((r) => !isHole(r)), { path: e.path })
      for (let i = 0; i < count; i++) {
        const mine = buf.subarray(i * CHUNK_SIZE, Math.min(n, (i + 1) * CHUNK_SIZE))
        const theirs = isHole(wanted[i]) ? ZERO_CHUNK : stored.shift()!
        // a stored chunk may be short: the bytes past its end read as zeroes
        const head = Math.min(mine.length, theirs.length)
        if (!mine.subarray(0, head).equals(theirs.subarray(0, head))) return false
        if (!mine.subarray(head).equals(ZERO_CHUNK.subarray(0, mine.length - head))) return false
      }
    }
    return (await src.read(buf, 0, 1, e.size)).bytesRead === 0 // and it has not grown since
  } finally {
    await src.close()
  }
}

/** Attributes of a new object as the host has them (xattrs, stamp and target added by type). */
export const attrsOf = (e: HostEntry): NewObject => ({ mode: e.mode, uid: e.uid, gid: e.gid, rdev: e.rdev, atime: fromNs(e.atimeNs), mtime: fromNs(e.mtimeNs) })

/**
 * Every attribute of the host object for an existing inode: mode with its special bits, owner,
 * times to the nanosecond, xattrs (undefined: keep those stored) and the host stamp.
 */
export function attrChange(e: HostEntry, xattrs: Xattrs | undefined, origin: HostStamp | undefined): AttrChange {
  const change: AttrChange = { mode: e.mode, uid: e.uid, gid: e.gid, atime: fromNs(e.atimeNs), mtime: fromNs(e.mtimeNs), origin }
  if (xattrs !== undefined) change.xattrs = Object.keys(xattrs).length > 0 ? xattrs : undefined
  return change
}
