import type { Store } from '../store.js'
import type { SnapshotLoss } from '../types.js'
import { refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { INODE_PREFIX, LAYER_PREFIX, PACKED_PREFIX, chunkKey, packedKey } from './keys.js'
import { decodePointer, packFileName } from './packs.js'
import type { SnapshotRecord } from './records.js'
import { TreeWalker, type FileCheck, type PathProblem } from './treewalk.js'

/**
 * What a store has lost, by snapshot and path: every snapshot's tree is walked and every record and
 * chunk it needs is looked for. Used after a repair, when whole tables of records may be gone, so
 * nothing is assumed present (treewalk.ts walks the trees).
 */
export interface LossReport {
  intact: string[]
  damaged: SnapshotLoss[]
  lostSnapshots: string[]
  orphanLayers: string[]
  unreferencedPacks: string[]
}

export async function findLosses(store: Store): Promise<LossReport> {
  const records = new Map<string, SnapshotRecord>()
  for await (const [name, r] of store.records()) records.set(name, r)
  const walker = new TreeWalker(store, lostChunks(store))
  const intact: string[] = []
  const damaged: SnapshotLoss[] = []
  const lostSnapshots = new Set<string>()
  for (const [name, r] of records) {
    const problems: string[] = []
    if (r.parent !== '' && !records.has(r.parent)) {
      problems.push(`parent '${r.parent}' is lost`)
      lostSnapshots.add(r.parent)
    }
    let paths: PathProblem[] = []
    try {
      if (r.layer !== undefined && !(await store.db.getRaw(`${LAYER_PREFIX}${r.layer}`))) problems.push(`layer record ${r.layer} is lost`)
      if (r.kind === 'committed' || (r.kind === 'active' && !lostSnapshots.has(r.parent))) paths = await walker.problems(name, r)
    } catch (err) {
      // a record the salvage kept but that cannot be read: the snapshot is not whole, whatever else it lost
      problems.push(`cannot be read: ${(err as Error).message}`)
    }
    if (problems.length === 0 && paths.length === 0) intact.push(name)
    else damaged.push({ name, kind: r.kind, problems, paths })
  }
  return { intact, damaged, lostSnapshots: [...lostSnapshots], orphanLayers: await orphanLayers(store, records), unreferencedPacks: unreferencedPacks(store, await packsPointedAt(store)) }
}

/**
 * A repair's file check: every chunk the file names has a record, or a pointer into a pack that
 * exists and is long enough. Each chunk is looked for once.
 */
function lostChunks(store: Store): FileCheck {
  const packSizes = new Map(store.db.packs.list().map((p) => [p.id, p.size]))
  const known = new Map<string, string | undefined>()
  const chunkProblem = async (hex: string): Promise<string | undefined> => {
    try {
      const where = await store.db.getRaw(packedKey(hex))
      if (!where) return (await store.db.getRaw(chunkKey(hex))) ? undefined : `chunk ${hex} is missing`
      const at = decodePointer(where)
      const size = packSizes.get(at.pack)
      if (size === undefined) return `chunk ${hex}: pack ${packFileName(at.pack)} is missing`
      if (at.offset + at.length > size) return `chunk ${hex}: pack ${packFileName(at.pack)} is too short`
      return undefined
    } catch (err) {
      return `chunk ${hex}: ${(err as Error).message}`
    }
  }
  return async (rec) => {
    let refs: Buffer[]
    try {
      refs = await referencedChunks(rec, store.chunks)
    } catch (err) {
      return (err as Error).message
    }
    const missing: string[] = []
    for (const ref of refs) {
      const hex = refHex(ref)
      if (!known.has(hex)) known.set(hex, await chunkProblem(hex))
      const problem = known.get(hex)
      if (problem) missing.push(problem)
    }
    if (missing.length === 0) return undefined
    return `${missing.length} of ${refs.length} chunk(s) lost (${missing[0]}${missing.length > 1 ? ', …' : ''})`
  }
}

/** Layers that records still name (a layer record, or inodes) but that no snapshot owns. */
async function orphanLayers(store: Store, records: Map<string, SnapshotRecord>): Promise<string[]> {
  const owned = new Set([...records.values()].flatMap((r) => (r.layer ? [r.layer] : [])))
  const found = new Set<string>()
  for await (const k of store.db.scanKeys(LAYER_PREFIX)) found.add(k.slice(LAYER_PREFIX.length))
  for await (const k of store.db.scanKeys(INODE_PREFIX)) found.add(k.slice(INODE_PREFIX.length, k.indexOf('/', INODE_PREFIX.length)))
  return [...found].filter((l) => !owned.has(l)).sort()
}

async function packsPointedAt(store: Store): Promise<Set<number>> {
  const packs = new Set<number>()
  for await (const [, v] of store.db.scan(PACKED_PREFIX)) {
    try {
      packs.add(decodePointer(v).pack)
    } catch {
      // a pointer that does not decode names no pack; the loss walk reports its file
    }
  }
  return packs
}

function unreferencedPacks(store: Store, named: Set<number>): string[] {
  return store.db.packs.list().filter((p) => !named.has(p.id)).map((p) => `${packFileName(p.id)} (${p.size} bytes)`)
}
