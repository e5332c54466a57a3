import { join } from 'node:path'
import { Level } from 'level'
import type { Store } from '../../engine/index.js'
import { CHUNK_PREFIX, layerEntriesPrefix, layerInodesPrefix } from '../../engine/store/keys.js'

export interface KeyBytes {
  keys: number
  /** Key plus value bytes, as LevelDB stores them before compression. */
  bytes: number
  valueBytes: number
}

/** Count and size of every record under a prefix. Reads values, so keep it to small prefixes. */
export async function prefixBytes(store: Store, prefix: string): Promise<KeyBytes> {
  const out: KeyBytes = { keys: 0, bytes: 0, valueBytes: 0 }
  for await (const [k, v] of store.db.scan(prefix)) {
    out.keys++
    out.valueBytes += v.length
    out.bytes += Buffer.byteLength(k) + v.length
  }
  return out
}

/** Every chunk key in the store (keys only: cheap even for a store of many GiB). */
export async function chunkKeys(store: Store): Promise<Set<string>> {
  const keys = new Set<string>()
  for await (const k of store.db.scanKeys(CHUNK_PREFIX)) keys.add(k)
  return keys
}

/** Chunks stored since `before` was taken: their count and bytes. */
export async function newChunks(store: Store, before: Set<string>): Promise<KeyBytes> {
  const added: string[] = []
  for await (const k of store.db.scanKeys(CHUNK_PREFIX)) if (!before.has(k)) added.push(k)
  const values = await store.db.getManyRaw(added)
  const out: KeyBytes = { keys: added.length, bytes: 0, valueBytes: 0 }
  added.forEach((k, i) => {
    const n = values[i]?.length ?? 0
    out.valueBytes += n
    out.bytes += Buffer.byteLength(k) + n
  })
  return out
}

/** Sum of the sizes of all chunks (for dedup checks); reads every chunk value. */
export async function allChunkBytes(store: Store): Promise<KeyBytes> {
  return prefixBytes(store, CHUNK_PREFIX)
}

export const MiB = 1024 * 1024
export const KiB = 1024

/** Records of a snapshot's own layer (inodes and directory entries), key plus value bytes. */
export async function layerRecords(store: Store, key: string): Promise<KeyBytes> {
  const layer = (await store.record(key, 'stat')).layer
  if (!layer) return { keys: 0, bytes: 0, valueBytes: 0 }
  const inodes = await prefixBytes(store, layerInodesPrefix(layer))
  const entries = await prefixBytes(store, layerEntriesPrefix(layer))
  return { keys: inodes.keys + entries.keys, bytes: inodes.bytes + entries.bytes, valueBytes: inodes.valueBytes + entries.valueBytes }
}

/**
 * Compacts a closed store's LevelDB completely, so that measurements that follow a big ingest do
 * not race LevelDB's background compaction for the machine's cores.
 */
export async function settleStore(storePath: string): Promise<void> {
  const db = new Level<string, Buffer>(join(storePath, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  await db.open()
  try {
    // `level` is classic-level under Node; its typings leave out the LevelDB-only compactRange.
    await (db as unknown as { compactRange: (start: string, end: string) => Promise<void> }).compactRange('\u0000', '\u{10ffff}')
  } finally {
    await db.close()
  }
}
