/**
 * Records of one layer, as stored. A layer holds what one kernel overlay directory would hold:
 * names (grouped by directory inode), inodes, and the overlay markers (whiteout entries, opaque and
 * redirect on directory inodes).
 */

/** Seconds and nanoseconds since the epoch, as in `struct timespec`. */
export type Timespec = [sec: number, nsec: number]

/** Where an imported file came from on the host; lets a re-snapshot skip unchanged files. */
export type HostStamp = [dev: number, ino: number, size: number, mtimeNs: string, ctimeNs: string]

export interface InodeRecord {
  /** Full st_mode, file type bits included. */
  mode: number
  uid: number
  gid: number
  rdev: number
  size: number
  nlink: number
  atime: Timespec
  mtime: Timespec
  ctime: Timespec
  /** Extended attributes by full name ('user.x', 'trusted.y', 'security.z'). */
  xattrs?: Record<string, Buffer>
  /** Content of a small regular file. */
  inline?: Buffer
  /** Checksum of `inline` (the 8-byte chunk hash of it); absent in records written before format 3. */
  inlineHash?: Buffer
  /** Chunk refs of a regular file, concatenated (see chunks.ts). */
  chunks?: Buffer
  /** For large files: refs of chunk-list pages, each page a chunk holding up to PAGE_REFS chunk refs. */
  pages?: Buffer
  /** Symlink target. */
  target?: string
  /** Directory hides everything below it in lower layers. */
  opaque?: boolean
  /** Directory was renamed here from this path (absolute from the root, or a name in the same parent). */
  redirect?: string
  origin?: HostStamp
  /** The layer this inode was copied up from (as the kernel's origin xattr); usage counts only new chunks. */
  copiedFrom?: string
  /** Never stored: the host file holding the data of an inode of a directory layer. */
  hostPath?: string
}

/** A name in a layer directory: [ino, file type nibble (mode >> 12)]; a whiteout is [0, 0]. */
export type EntryRecord = [ino: number, type: number]

export const WHITEOUT: EntryRecord = [0, 0]

export const isWhiteout = (e: EntryRecord): boolean => e[0] === 0

export const ROOT_INO = 1

export interface LayerRecord {
  /** Sealed layers never change again. */
  sealed: boolean
  created: number
}

export interface SnapshotRecord {
  kind: 'active' | 'view' | 'committed'
  parent: string
  /** The snapshot's own layer (active and committed). */
  layer?: string
  /** Root node of the merged directory index (committed). */
  index?: string
  /** Inodes with more than one name whose record lives in a higher layer than some of their names. */
  links?: Record<string, string>
  labels: Record<string, string>
  created: number
  updated: number
}

export function nowTimespec(): Timespec {
  const ns = process.hrtime.bigint() - hrBase + wallBase
  return [Number(ns / 1000000000n), Number(ns % 1000000000n)]
}
const wallBase = BigInt(Date.now()) * 1000000n
const hrBase = process.hrtime.bigint()
