import { open } from 'node:fs/promises'
import type { Db, Txn } from './db.js'
import type { ChunkStore } from './chunks.js'
import { FileContent } from './filedata.js'
import { decode } from './codec.js'
import { entryDirPrefix, entryKey, inodeKey, layerEntriesPrefix, layerInodesPrefix } from './keys.js'
import type { EntryRecord, InodeRecord } from './records.js'
import { freezeRecord } from './recordcache.js'
import { isDirType, typeOf, type UpperTxn, type UpperWriter } from '../overlay/node.js'
import { fsError } from '../errors.js'

/**
 * One layer's records in the store. Reads touch only the keys asked for: a name is one get, a
 * directory one range scan, so a huge layer is never decoded whole.
 */
export class StoreLayer implements UpperWriter {
  /** `chunks` is needed only to take in data that lives on the host (copy-up from a directory layer). */
  constructor(readonly id: string, private readonly db: Db, private readonly chunks?: ChunkStore) {}

  /**
   * An operation's changes. Not durable ones are acknowledged once queued (write-behind): reads
   * see them at once, and `sync` (or a durable commit) waits until they have landed.
   */
  txn(): Txn {
    return this.db.txn({ writeBehind: true })
  }

  sync(): Promise<void> {
    return this.db.syncLog()
  }

  /** Same chunks, no data moved; data of a host file is stored as chunks within the txn. */
  async adoptRecord(txn: UpperTxn, rec: InodeRecord): Promise<InodeRecord> {
    if (rec.hostPath === undefined) return rec
    if (!this.chunks) throw fsError('EIO', 'copy-up', rec.hostPath, 'store layer opened without its chunk store')
    const content = FileContent.empty(this.chunks)
    const fh = await open(rec.hostPath, 'r')
    try {
      const buf = Buffer.allocUnsafe(1 << 20)
      for (let pos = 0; ;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
        if (bytesRead === 0) break
        await content.write(buf.subarray(0, bytesRead), pos)
        pos += bytesRead
      }
    } finally {
      await fh.close()
    }
    await content.truncate(rec.size)
    const { hostPath: _, ...kept } = rec
    return { ...kept, ...(await content.flush(txn)) }
  }

  readonly keepsHardLinks = true

  // Lookups read on the calling thread (Db.getSync): a stat in an active snapshot is several of
  // them, and each trip through libuv's pool cost more than the read itself. Every path walk
  // reads the same entries and dir inodes again, so they are kept decoded (Db.getSyncShared),
  // frozen since every reader gets the same object.
  async entry(dirIno: number, name: string): Promise<EntryRecord | undefined> {
    return this.db.getSyncShared<EntryRecord>(entryKey(this.id, dirIno, name), freezeEntry)
  }

  async entries(dirIno: number): Promise<Array<[string, EntryRecord]>> {
    const prefix = entryDirPrefix(this.id, dirIno)
    return (await this.db.scanShared(prefix)).map(([k, v]) => [k.slice(prefix.length), decode<EntryRecord>(v)])
  }

  async inode(ino: number): Promise<InodeRecord | undefined> {
    return this.db.getSyncShared<InodeRecord>(inodeKey(this.id, ino), freezeRecord)
  }

  putEntry(txn: UpperTxn, dirIno: number, name: string, rec: EntryRecord): void {
    ;(txn as Txn).put(entryKey(this.id, dirIno, name), rec)
  }
  delEntry(txn: UpperTxn, dirIno: number, name: string): void {
    ;(txn as Txn).del(entryKey(this.id, dirIno, name))
  }
  putInode(txn: UpperTxn, ino: number, rec: InodeRecord, made = false): void {
    if (made && isDirType(typeOf(rec.mode))) this.db.scanStartsEmpty(entryDirPrefix(this.id, ino))
    if (rec.hostPath !== undefined) throw fsError('EIO', 'write', rec.hostPath, 'host data must be adopted before it is stored')
    ;(txn as Txn).put(inodeKey(this.id, ino), stripUndefined(rec))
  }
  delInode(txn: UpperTxn, ino: number): void {
    ;(txn as Txn).del(inodeKey(this.id, ino))
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

const freezeEntry = (e: EntryRecord): EntryRecord => Object.freeze(e) as EntryRecord

/** A copy without the fields set to undefined, which msgpack would store as nil. for-in: records are plain objects, and it allocates nothing per field (Object.entries cost 3x). */
function stripUndefined<T extends object>(rec: T): T {
  const out = {} as Record<string, unknown>
  for (const k in rec) {
    const v = rec[k]
    if (v !== undefined) out[k] = v
  }
  return out as T
}
