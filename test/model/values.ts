import { createHash } from 'node:crypto'

/** The shapes the model and the store's answers are compared in. */

export type Kind = 'file' | 'dir' | 'symlink' | 'fifo'

export const TYPE_BITS: Record<Kind, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000 }

export interface MNode {
  /** Identity of the inode; names that share an MNode are hard links. */
  id: number
  kind: Kind
  /** Permission bits (07777). */
  perm: number
  uid: number
  gid: number
  /** Names of a non-dir (dirs have exactly one). */
  nlink: number
  data: Buffer
  target: string
  entries: Map<string, MNode>
  /** The dir holding a dir ('..'); the root is its own parent. */
  parent: MNode | null
  xattrs: Map<string, Buffer>
  /** Known times in nanoseconds; undefined once an operation set them to "now". */
  atime?: bigint
  mtime?: bigint
}

/** What a stat shows of one inode; `ino` is the model id here and st_ino on the store side. */
export interface Desc {
  type: Kind
  mode: number
  uid: number
  gid: number
  ino: number
  nlink: number
  /** Non-dirs only (a dir's st_size is not modelled). */
  size?: number
  /** Dirs only: how many subdirectories it holds, for the nlink rule. */
  subdirs?: number
  hash?: string
  target?: string
  xattrs: Record<string, string>
  atime?: bigint
  mtime?: bigint
}

export interface DirEntryValue {
  name: string
  type: Kind
  ino: number
}

export type Value =
  | { t: 'data'; size: number; hash: string }
  | { t: 'text'; v: string }
  | { t: 'names'; v: string[] }
  | { t: 'stat'; d: Desc }
  | { t: 'dir'; entries: DirEntryValue[] }

export type Outcome = { ok: true; value?: Value } | { ok: false; code: string }

export const hashOf = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex')
export const dataValue = (b: Uint8Array): Value => ({ t: 'data', size: b.length, hash: hashOf(b) })
