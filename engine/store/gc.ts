import type { Db } from './db.js'
import type { ChunkStore } from './chunks.js'
import { refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { CHUNK_PREFIX, LAYER_PREFIX, NODE_PREFIX, PACKED_PREFIX, SNAPSHOT_PREFIX, layerKey, snapshotKey } from './keys.js'
import { decodePointer, type PackPointer } from './packs.js'
import { decode } from './codec.js'
import { StoreLayer } from './layer.js'
import { reachableNodes, type NodeCache } from './mergeindex.js'
import type { InodeRecord, SnapshotRecord } from './records.js'
import type { GcReport } from '../types.js'

const BATCH = 5000
/** A pack whose live chunks fill less than this share of it is rewritten (its live chunks copied, the file deleted). */
export const REPACK_BELOW = 0.5
/** Live chunks copied per batch when rewriting a pack. */
const REPACK_BATCH_BYTES = 32 * 1024 * 1024

/**
 * Mark and sweep. Live: layers named by a snapshot, index nodes reachable from a committed
 * snapshot's root, chunks used by a live layer's inode or by a file still open. Everything else
 * goes, in batches; a crash midway leaves only garbage that the next gc removes. `orphans` are
 * snapshot keys to delete first (imports' temporary snapshots that no import fills any more):
 * their layers are then swept like any other.
 */
export async function collectGarbage(db: Db, chunks: ChunkStore, cache: NodeCache, openRecords: InodeRecord[], orphans: string[] = []): Promise<GcReport> {
  if (orphans.length > 0) {
    const drop = db.txn()
    for (const key of orphans) drop.del(snapshotKey(key))
    await drop.commit(true)
  }
  const liveLayers = new Set<string>()
  const liveNodes = new Set<string>()
  for await (const [, v] of db.scan(SNAPSHOT_PREFIX)) {
    const r = decode<SnapshotRecord>(v)
    if (r.layer) liveLayers.add(r.layer)
    if (r.index) for await (const _ of reachableNodes(db, cache, r.index, liveNodes)) { /* marks */ }
  }
  const liveChunks = new Set<string>()
  const mark = async (rec: InodeRecord): Promise<void> => {
    for (const ref of await referencedChunks(rec, chunks)) liveChunks.add(refHex(ref))
  }
  for (const layer of liveLayers) for await (const [, rec] of new StoreLayer(layer, db).inodes()) await mark(rec)
  for (const rec of openRecords) await mark(rec)

  const report: GcReport = { orphansRemoved: orphans.length, chunksRemoved: 0, bytesRemoved: 0, nodesRemoved: 0, layersRemoved: 0, packsRemoved: 0, bytesRepacked: 0, packBytesFreed: 0 }
  let txn = db.txn()
  const flushIfFull = async (): Promise<void> => {
    if (txn.size >= BATCH) { await txn.commit(); txn = db.txn() }
  }
  for await (const [k, v] of db.scan(CHUNK_PREFIX)) {
    const hex = k.slice(CHUNK_PREFIX.length)
    if (liveChunks.has(hex)) continue
    txn.del(k)
    chunks.forget(hex)
    report.chunksRemoved++
    report.bytesRemoved += v.length
    await flushIfFull()
  }
  const livePacked = new Map<number, { id: string; at: PackPointer }[]>()
  for await (const [k, v] of db.scan(PACKED_PREFIX)) {
    const hex = k.slice(PACKED_PREFIX.length)
    const at = decodePointer(v)
    if (liveChunks.has(hex)) {
      let list = livePacked.get(at.pack)
      if (!list) livePacked.set(at.pack, (list = []))
      list.push({ id: hex, at })
      continue
    }
    txn.del(k)
    chunks.forget(hex)
    report.chunksRemoved++
    report.bytesRemoved += at.length
    await flushIfFull()
  }
  for await (const k of db.scanKeys(NODE_PREFIX)) {
    const id = k.slice(NODE_PREFIX.length)
    if (liveNodes.has(id)) continue
    txn.del(k)
    cache.delete(id)
    report.nodesRemoved++
    await flushIfFull()
  }
  for await (const k of db.scanKeys(LAYER_PREFIX)) {
    const id = k.slice(LAYER_PREFIX.length)
    if (liveLayers.has(id)) continue
    await new StoreLayer(id, db).destroy(txn)
    txn.del(layerKey(id))
    report.layersRemoved++
    await flushIfFull()
  }
  await txn.commit(true)
  await repack(db, livePacked, report)
  return report
}

/**
 * Deletes the packs no chunk lives in any more, and rewrites those mostly dead: their live
 * chunks are appended to a new pack (in their old order, so a file still reads in one sweep),
 * the pointers moved in a synced batch, and only then the old file deleted. A crash in between
 * leaves an unused copy or an unused pack, which the next gc deletes.
 */
async function repack(db: Db, livePacked: Map<number, { id: string; at: PackPointer }[]>, report: GcReport): Promise<void> {
  // Writers wait for the store's lock, which gc holds: the pack being written can be ended here,
  // so that a long-running process's current pack is reclaimed like the others.
  await db.packs.seal()
  // wholly dead packs first: deleting them takes no space, rewriting the others does (on a full disk)
  const packs = db.packs.list().sort((a, b) => Number(livePacked.has(a.id)) - Number(livePacked.has(b.id)))
  for (const { id: pack, size } of packs) {
    if (pack === db.packs.writing) continue
    const live = (livePacked.get(pack) ?? []).sort((a, b) => a.at.offset - b.at.offset)
    let liveBytes = 0
    for (const c of live) liveBytes += c.at.length
    if (live.length > 0 && liveBytes >= size * REPACK_BELOW) continue
    for (let i = 0; i < live.length;) {
      const txn = db.txn()
      let bytes = 0
      for (; i < live.length && bytes < REPACK_BATCH_BYTES; i++) {
        txn.moveChunk(live[i].id, await db.packs.readSpan(pack, live[i].at.offset, live[i].at.length))
        bytes += live[i].at.length
      }
      await txn.commit(true)
    }
    await db.packs.remove(pack)
    report.packsRemoved++
    report.bytesRepacked += liveBytes
    report.packBytesFreed += size - liveBytes
  }
}
