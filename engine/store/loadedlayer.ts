import type { EntryRecord, InodeRecord } from './records.js'
import type { StoreLayer } from './layer.js'
import { isDirType, typeOf } from '../overlay/node.js'

/**
 * A layer read whole in two range scans, for a commit: its entries grouped by dir, its dir
 * records, and the link count of every other inode. Reading it dir by dir instead costs a
 * store round trip per dir and per subdir, which in a layer of many dirs took most of a commit
 * (bench/engine.ts, resnapshot). File records are not kept: they can hold data.
 */
export class LoadedLayer {
  private constructor(
    readonly id: string,
    private readonly byDir: Map<number, Array<[string, EntryRecord]>>,
    private readonly dirRecords: Map<number, InodeRecord>,
    /** Link count of each non-dir inode with a record in the layer. */
    readonly fileLinks: Map<number, number>,
  ) {}

  static async load(layer: StoreLayer): Promise<LoadedLayer> {
    const byDir = new Map<number, Array<[string, EntryRecord]>>()
    for await (const [dirIno, name, e] of layer.allEntries()) {
      let list = byDir.get(dirIno)
      if (!list) byDir.set(dirIno, (list = []))
      list.push([name, e])
    }
    const dirRecords = new Map<number, InodeRecord>()
    const fileLinks = new Map<number, number>()
    for await (const [ino, rec] of layer.inodes()) {
      if (isDirType(typeOf(rec.mode))) dirRecords.set(ino, rec)
      else fileLinks.set(ino, rec.nlink)
    }
    return new LoadedLayer(layer.id, byDir, dirRecords, fileLinks)
  }

  /** The names of dir `dirIno` in this layer, whiteouts included. */
  entries(dirIno: number): Array<[string, EntryRecord]> {
    return this.byDir.get(dirIno) ?? []
  }

  dirInode(ino: number): InodeRecord | undefined {
    return this.dirRecords.get(ino)
  }

  /** Every inode some entry of this layer names. */
  namedInodes(): Set<number> {
    const out = new Set<number>()
    for (const list of this.byDir.values()) for (const [, e] of list) out.add(e[0])
    return out
  }
}
