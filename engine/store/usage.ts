import type { Db } from './db.js'
import type { ChunkStore } from './chunks.js'
import { CHUNK_SIZE, REF_SIZE, isHole, refHex } from './chunks.js'
import { PAGE_REFS, loadRefs, referencedChunks } from './filedata.js'
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
    // Sizes as stored: the last chunk only up to the file's end, a page 9 bytes per ref it holds.
    if (rec.pages) {
      const refCount = Math.ceil(rec.size / CHUNK_SIZE)
      for (let off = 0, p = 0; off < rec.pages.length; off += REF_SIZE, p++) {
        const hex = refHex(rec.pages.subarray(off, off + REF_SIZE))
        if (!inherited.has(hex)) own.set(hex, Math.min(PAGE_REFS, refCount - p * PAGE_REFS) * REF_SIZE)
      }
    }
    const refs = await loadRefs(rec, chunks)
    for (let i = 0; i * REF_SIZE < refs.length; i++) {
      const ref = refs.subarray(i * REF_SIZE, (i + 1) * REF_SIZE)
      const hex = refHex(ref)
      if (!isHole(ref) && !inherited.has(hex)) own.set(hex, Math.min(CHUNK_SIZE, rec.size - i * CHUNK_SIZE))
    }
  }
  let size = 0
  for (const n of own.values()) size += n
  return { size, inodes }
}
