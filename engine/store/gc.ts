import type { Db } from './db.js'
import type { ChunkStore } from './chunks.js'
import { refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { CHUNK_PREFIX, LAYER_PREFIX, NODE_PREFIX, SNAPSHOT_PREFIX, layerKey } from './keys.js'
import { decode } from './codec.js'
import { StoreLayer } from './layer.js'
import { reachableNodes, type NodeCache } from './mergeindex.js'
import type { InodeRecord, SnapshotRecord } from './records.js'
import type { GcReport } from '../types.js'

const BATCH = 5000

/**
 * Mark and sweep. Live: layers named by a snapshot, index nodes reachable from a committed
 * snapshot's root, chunks used by a live layer's inode or by a file still open. Everything else
 * goes, in batches; a crash midway leaves only garbage that the next gc removes.
 */
export async function collectGarbage(db: Db, chunks: ChunkStore, cache: NodeCache, openRecords: InodeRecord[]): Promise<GcReport> {
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

  const report: GcReport = { chunksRemoved: 0, bytesRemoved: 0, nodesRemoved: 0, layersRemoved: 0 }
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
  return report
}
