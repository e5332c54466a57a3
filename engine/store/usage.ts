import type { Db } from './db.js'
import type { ChunkStore } from './chunks.js'
import { CHUNK_SIZE, refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { inodeKey } from './keys.js'
import type { InodeRecord } from './records.js'
import type { StoreLayer } from './layer.js'

/**
 * A layer's own usage: entries it holds, and bytes of the chunks its inodes use that the inode
 * did not already use where it was copied up from (a copy-up costs only what was written).
 */
export async function layerUsage(db: Db, chunks: ChunkStore, layer: StoreLayer): Promise<{ size: number; inodes: number }> {
  let inodes = 0
  for await (const _ of layer.allEntries()) inodes++
  const own = new Map<string, number>()
  for await (const [ino, rec] of layer.inodes()) {
    if (rec.inline) { own.set(`inline:${layer.id}:${ino}`, rec.inline.length); continue }
    if (!rec.chunks && !rec.pages) continue
    const inherited = new Set<string>()
    if (rec.copiedFrom) {
      const base = await db.get<InodeRecord>(inodeKey(rec.copiedFrom, ino))
      if (base) for (const r of await referencedChunks(base, chunks)) inherited.add(refHex(r))
    }
    const pages = new Set<string>()
    if (rec.pages) for (let off = 0; off < rec.pages.length; off += 9) pages.add(refHex(rec.pages.subarray(off, off + 9)))
    for (const r of await referencedChunks(rec, chunks)) {
      const hex = refHex(r)
      if (!inherited.has(hex)) own.set(hex, pages.has(hex) ? 9 * 1024 : CHUNK_SIZE)
    }
  }
  let size = 0
  for (const n of own.values()) size += n
  return { size, inodes }
}
