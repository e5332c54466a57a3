import { join } from 'node:path'
import { Level } from 'level'
import type { Store } from '../../engine/index.js'
import { CHUNK_PREFIX, PACKED_PREFIX, layerEntriesPrefix, layerInodesPrefix } from '../../engine/store/keys.js'
import { decodePointer } from '../../engine/store/packs.js'

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

/** Every chunk key in the store, kept in LevelDB or in a pack (keys only: cheap even for a store of many GiB). */
export async function chunkKeys(store: Store): Promise<Set<string>> {
  const keys = new Set<string>()
  for (const prefix of [CHUNK_PREFIX, PACKED_PREFIX]) for await (const k of store.db.scanKeys(prefix)) keys.add(k)
  return keys
}

/** Bytes a chunk's body takes, from its key's value (the body, or a pointer into a pack). */
const bodyBytes = (key: string, value: Buffer | undefined): number =>
  value === undefined ? 0 : key.startsWith(PACKED_PREFIX) ? decodePointer(value).length : value.length

/** Chunks stored since `before` was taken: their count and bytes (key plus body). */
export async function newChunks(store: Store, before: Set<string>): Promise<KeyBytes> {
  const added = [...(await chunkKeys(store))].filter((k) => !before.has(k))
  const values = await store.db.getManyRaw(added)
  const out: KeyBytes = { keys: added.length, bytes: 0, valueBytes: 0 }
  added.forEach((k, i) => {
    const n = bodyBytes(k, values[i])
    out.valueBytes += n
    out.bytes += Buffer.byteLength(k) + n
  })
  return out
}

/** Sum of the sizes of all chunk bodies (for dedup checks). */
export async function allChunkBytes(store: Store): Promise<KeyBytes> {
  const out: KeyBytes = { keys: 0, bytes: 0, valueBytes: 0 }
  for (const prefix of [CHUNK_PREFIX, PACKED_PREFIX]) {
    for await (const [k, v] of store.db.scan(prefix)) {
      const n = bodyBytes(k, v)
      out.keys++
      out.valueBytes += n
      out.bytes += Buffer.byteLength(k) + n
    }
  }
  return out
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
