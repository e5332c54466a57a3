import type { Db, Txn } from './db.js'
import { decode } from './codec.js'
import { entryDirPrefix, entryKey, inodeKey, layerEntriesPrefix, layerInodesPrefix } from './keys.js'
import type { EntryRecord, InodeRecord } from './records.js'
import type { UpperLayer } from '../overlay/node.js'

/**
 * One layer's records in the store. Reads touch only the keys asked for: a name is one get, a
 * directory one range scan, so a huge layer is never decoded whole.
 */
export class StoreLayer implements UpperLayer {
  constructor(readonly id: string, private readonly db: Db) {}

  async entry(dirIno: number, name: string): Promise<EntryRecord | undefined> {
    return this.db.get<EntryRecord>(entryKey(this.id, dirIno, name))
  }

  async entries(dirIno: number): Promise<Array<[string, EntryRecord]>> {
    const prefix = entryDirPrefix(this.id, dirIno)
    const out: Array<[string, EntryRecord]> = []
    for await (const [k, v] of this.db.scan(prefix)) out.push([k.slice(prefix.length), decode<EntryRecord>(v)])
    return out
  }

  async inode(ino: number): Promise<InodeRecord | undefined> {
    return this.db.get<InodeRecord>(inodeKey(this.id, ino))
  }

  putEntry(txn: Txn, dirIno: number, name: string, rec: EntryRecord): void {
    txn.put(entryKey(this.id, dirIno, name), rec)
  }
  delEntry(txn: Txn, dirIno: number, name: string): void {
    txn.del(entryKey(this.id, dirIno, name))
  }
  putInode(txn: Txn, ino: number, rec: InodeRecord): void {
    txn.put(inodeKey(this.id, ino), stripUndefined(rec))
  }
  delInode(txn: Txn, ino: number): void {
    txn.del(inodeKey(this.id, ino))
  }

  /** Every inode record of the layer (for usage, gc, fsck, commit). */
  async *inodes(): AsyncGenerator<[number, InodeRecord]> {
    const prefix = layerInodesPrefix(this.id)
    for await (const [k, v] of this.db.scan(prefix)) yield [parseInt(k.slice(prefix.length), 16), decode<InodeRecord>(v)]
  }

  async *allEntries(): AsyncGenerator<[number, string, EntryRecord]> {
    const prefix = layerEntriesPrefix(this.id)
    for await (const [k, v] of this.db.scan(prefix)) {
      const rest = k.slice(prefix.length)
      const cut = rest.indexOf('/')
      yield [parseInt(rest.slice(0, cut), 16), rest.slice(cut + 1), decode<EntryRecord>(v)]
    }
  }

  /** Deletes every record of the layer. */
  async destroy(txn: Txn): Promise<void> {
    for await (const k of this.db.scanKeys(layerEntriesPrefix(this.id))) txn.del(k)
    for await (const k of this.db.scanKeys(layerInodesPrefix(this.id))) txn.del(k)
  }
}

function stripUndefined<T extends object>(rec: T): T {
  const out = {} as T
  for (const [k, v] of Object.entries(rec)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
