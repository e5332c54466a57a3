import type { Db } from './db.js'
import type { ChunkStore } from './chunks.js'
import { refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { CHUNK_PREFIX, PACKED_PREFIX, SNAPSHOT_PREFIX, chunkKey, inodeKey, layerKey, packedKey } from './keys.js'
import { decodePointer, packFileName } from './packs.js'
import { decode } from './codec.js'
import { StoreLayer } from './layer.js'
import { newNodeCache, reachableNodes } from './mergeindex.js'
import { ROOT_INO, type InodeRecord, type SnapshotRecord } from './records.js'
import type { FsckReport } from '../types.js'
import { checkInline, newDamage, type Damage } from './damage.js'

/**
 * Checks that everything a snapshot can reach is present: parents, layers, index nodes, the
 * inodes that entries and index nodes name, and every chunk. With `verifyData`, every chunk is
 * also re-hashed, and every inline content checked against its checksum. Unreferenced data is
 * not a problem (gc reclaims it). What files use and is bad is noted in `damage`.
 */
export async function checkStore(db: Db, chunks: ChunkStore, opts: { verifyData?: boolean }, damage: Damage = newDamage()): Promise<FsckReport> {
  // Index nodes are read from the db, not the store's node cache, which may hold one the db lost.
  const cache = newNodeCache()
  const problems: string[] = []
  const checked = { snapshots: 0, layers: 0, inodes: 0, chunks: 0, nodes: 0 }
  const snapshots = new Map<string, SnapshotRecord>()
  for await (const [k, v] of db.scan(SNAPSHOT_PREFIX)) snapshots.set(k.slice(SNAPSHOT_PREFIX.length), decode<SnapshotRecord>(v))

  const layers = new Set<string>()
  const seenNodes = new Set<string>()
  for (const [name, r] of snapshots) {
    checked.snapshots++
    if (r.parent !== '') {
      const p = snapshots.get(r.parent)
      if (!p) problems.push(`snapshot '${name}': parent '${r.parent}' is missing`)
      else if (p.kind !== 'committed') problems.push(`snapshot '${name}': parent '${r.parent}' is ${p.kind}, not committed`)
    }
    if (r.kind !== 'view') {
      if (!r.layer) { problems.push(`snapshot '${name}': no layer`); continue }
      if (!(await db.getRaw(layerKey(r.layer)))) problems.push(`snapshot '${name}': layer ${r.layer} is missing`)
      layers.add(r.layer)
    }
    if (r.kind === 'committed') {
      if (!r.index) { problems.push(`snapshot '${name}': committed without an index`); continue }
      try {
        for await (const [id, n] of reachableNodes(db, cache, r.index, seenNodes)) {
          checked.nodes++
          if ('e' in n) {
            for (const e of n.e) {
              const layer = r.links?.[e[1]] ?? e[3]
              if (!(await db.getRaw(inodeKey(layer, e[1])))) problems.push(`index node ${id}: '${e[0]}' names inode ${e[1]} missing from layer ${layer}`)
            }
          }
        }
      } catch (err) {
        problems.push(`snapshot '${name}': ${(err as Error).message}`)
      }
    }
  }

  const usedChunks = new Set<string>()
  for (const id of layers) {
    checked.layers++
    const layer = new StoreLayer(id, db)
    if (!(await layer.inode(ROOT_INO))) problems.push(`layer ${id}: no root inode`)
    for await (const [dirIno, name, e] of layer.allEntries()) {
      if (e[0] === 0) continue
      if (!(await layer.inode(e[0]))) problems.push(`layer ${id}: entry '${name}' in dir ${dirIno} names missing inode ${e[0]}`)
    }
    for await (const [ino, rec] of layer.inodes()) {
      checked.inodes++
      if (opts.verifyData) checkInline(id, ino, rec as InodeRecord, chunks, problems, damage)
      let refs: Buffer[]
      try {
        refs = await referencedChunks(rec as InodeRecord, chunks)
      } catch (err) {
        problems.push(`layer ${id} inode ${ino}: ${(err as Error).message}`)
        damage.inodes = true
        continue
      }
      for (const ref of refs) usedChunks.add(refHex(ref))
    }
  }
  const packSizes = new Map(db.packs.list().map((p) => [p.id, p.size]))
  /** A packed chunk's body, or why it cannot be read. */
  const packedBody = async (hex: string, raw: Buffer, read: boolean): Promise<Buffer | string | undefined> => {
    let at
    try {
      at = decodePointer(raw)
    } catch (err) {
      return `chunk ${hex}: ${(err as Error).message}`
    }
    const size = packSizes.get(at.pack)
    if (size === undefined) return `chunk ${hex}: pack ${packFileName(at.pack)} is missing`
    if (at.offset + at.length > size) return `chunk ${hex}: pack ${packFileName(at.pack)} ends at ${size}, before the chunk's end at ${at.offset + at.length}`
    return read ? db.packs.readSpan(at.pack, at.offset, at.length) : undefined
  }
  const verify = (hex: string, data: Buffer, what: string): boolean => {
    if (chunks.hash(data).toString('hex') === hex.slice(0, 16)) return true
    problems.push(`${what} ${hex} does not match its hash`)
    return false
  }
  for (const hex of usedChunks) {
    checked.chunks++
    const where = await db.getRaw(packedKey(hex))
    if (where) {
      const body = await packedBody(hex, where, opts.verifyData === true)
      if (typeof body === 'string') problems.push(body)
      if (typeof body === 'string' || (body && !verify(hex, body, 'chunk'))) damage.chunks.add(hex)
      continue
    }
    const data = await db.getRaw(chunkKey(hex))
    if (!data) { problems.push(`chunk ${hex} is missing`); damage.chunks.add(hex); continue }
    if (opts.verifyData && !verify(hex, data, 'chunk')) damage.chunks.add(hex)
  }
  if (opts.verifyData) {
    for await (const [k, v] of db.scan(CHUNK_PREFIX)) {
      const hex = k.slice(CHUNK_PREFIX.length)
      if (!usedChunks.has(hex)) verify(hex, v, 'unused chunk')
    }
    for await (const [k, v] of db.scan(PACKED_PREFIX)) {
      const hex = k.slice(PACKED_PREFIX.length)
      if (usedChunks.has(hex)) continue
      const body = await packedBody(hex, v, true)
      if (typeof body === 'string') problems.push(`unused ${body}`)
      else if (body) verify(hex, body, 'unused chunk')
    }
  }
  return { ok: problems.length === 0, problems, checked }
}
