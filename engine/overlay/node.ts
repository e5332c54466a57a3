import type { InodeRecord } from '../store/records.js'

/** File type nibbles (st_mode >> 12). */
export const T = { FIFO: 1, CHR: 2, DIR: 4, BLK: 6, REG: 8, LNK: 10, SOCK: 12 } as const
export const S_IFMT = 0o170000
export const typeOf = (mode: number): number => (mode & S_IFMT) >> 12
export const isDirType = (t: number): boolean => t === T.DIR

/** An object of a read-only merged tree (what lies beneath an upper layer). */
export interface LowerNode {
  ino: number
  type: number
  /** The store layer holding the inode, where the tree knows it. */
  layer?: string
}

/**
 * A read-only merged tree: the stack beneath an upper layer. Store snapshots answer from their
 * merged directory index (cost independent of the number of layers); other stacks may merge
 * layer by layer with the same rules.
 */
export interface LowerTree {
  readonly root: LowerNode
  lookup(dir: LowerNode, name: string): Promise<LowerNode | undefined>
  list(dir: LowerNode): Promise<Array<[string, LowerNode]>>
  inode(node: LowerNode): Promise<InodeRecord>
}

/** The upper layer of an overlay: one layer's raw records, whiteouts and markers included. */
export interface UpperLayer {
  readonly id: string
  /** The raw record of `name` in upper dir `dirIno`: [ino, type]; a whiteout is [0, 0]. */
  entry(dirIno: number, name: string): Promise<[number, number] | undefined>
  entries(dirIno: number): Promise<Array<[string, [number, number]]>>
  inode(ino: number): Promise<InodeRecord | undefined>
  /**
   * Optional, for a layer whose lookups may wait on a disk: looks `name` up in dir `dirIno` ahead
   * of the entry() call of a walk (StackedTree). At once, answering what is there and whether
   * the answer waited on the disk; or, with `inPool`, started in the background and answered
   * undefined, entry() then waiting for it. Never throws: entry() reports what goes wrong.
   */
  probe?(dirIno: number, name: string, inPool: boolean): ProbeAnswer | undefined
}

/** What a layer's probe found at once. */
export interface ProbeAnswer {
  /** The raw record of the name, as entry() answers it. */
  entry: [number, number] | undefined
  /** The answer came from the disk, not from the host's caches. */
  waited: boolean
}

/**
 * The changes of one operation on an upper layer, applied together by `commit`: a store layer
 * writes them as one LevelDB batch, a directory layer replays them on the host in order.
 */
export interface UpperTxn {
  commit(durable?: boolean): Promise<void>
}

/**
 * An upper layer that takes writes. Writes name records as a store layer holds them (entries by
 * directory inode, inode records); every write joins a transaction made by `txn()`.
 */
export interface UpperWriter extends UpperLayer {
  txn(): UpperTxn
  putEntry(txn: UpperTxn, dirIno: number, name: string, rec: [number, number]): void
  delEntry(txn: UpperTxn, dirIno: number, name: string): void
  /** `made`: the inode was just allocated, so the layer holds nothing of it (a new dir has no entries). */
  putInode(txn: UpperTxn, ino: number, rec: InodeRecord, made?: boolean): void
  delInode(txn: UpperTxn, ino: number): void
  /**
   * The record this layer keeps for a copy of `rec` made within `txn`: a store layer points at
   * the same chunks (and imports data that lives on the host); a directory layer copies data
   * when the transaction is applied, as the kernel does.
   */
  adoptRecord(txn: UpperTxn, rec: InodeRecord): Promise<InodeRecord>
  /**
   * Lower hard links stay one inode across copy-up (a store layer, like the kernel's index=on).
   * A directory layer cannot record that on disk: there, as in the kernel without index, the
   * names of a lower hard link are separate inodes to the overlay, and a copy is a new inode.
   */
  readonly keepsHardLinks: boolean
  /** Makes every committed transaction durable. */
  sync(): Promise<void>
}

/** An object of the merged view, as found by one lookup. */
export interface OvlNode {
  name: string
  /** Merged path from the root, '/' for the root. */
  path: string
  parent: OvlNode | null
  ino: number
  type: number
  /** The name has an entry, and the inode a record, in the upper layer. */
  upper: boolean
  /** For a dir: the lower dir merged into it. For a non-dir not in the upper: the lower object. */
  lower?: LowerNode
  /** Where `lower` sits in the lower tree (dirs only); redirects are made from it. */
  lowerPath?: string
  /** The upper dir hides everything beneath it. */
  opaque: boolean
}

export const joinPath = (dir: string, name: string): string => (dir === '/' ? `/${name}` : `${dir}/${name}`)
