import type { Store } from '../store.js'
import type { SnapshotFs } from '../snapshotfs.js'
import type { SnapshotLoss } from '../types.js'
import { refHex } from './chunks.js'
import { referencedChunks } from './filedata.js'
import { INODE_PREFIX, LAYER_PREFIX, PACKED_PREFIX, chunkKey, packedKey } from './keys.js'
import { decodePointer, packFileName } from './packs.js'
import type { IndexLowerNode, IndexTree } from './mergeindex.js'
import type { InodeRecord, SnapshotRecord } from './records.js'
import { T, joinPath } from '../overlay/node.js'

/**
 * What a store has lost, by snapshot and path: every snapshot's tree is walked and every record and
 * chunk it needs is looked for. Used after a repair, when whole tables of records may be gone, so
 * nothing is assumed present. Committed trees are walked through their merged index, each shared
 * directory node once; active snapshots through their overlay, reading every file.
 */
export interface LossReport {
  intact: string[]
  damaged: SnapshotLoss[]
  lostSnapshots: string[]
  orphanLayers: string[]
  unreferencedPacks: string[]
}

type PathProblem = { path: string; problem: string }

const READ_PIECE = 1024 * 1024

export async function findLosses(store: Store): Promise<LossReport> {
  const records = new Map<string, SnapshotRecord>()
  for await (const [name, r] of store.records()) records.set(name, r)
  const walker = new IndexWalker(store)
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
      if (r.kind === 'committed') paths = await walker.committed(name, r)
      else if (r.kind === 'active' && !lostSnapshots.has(r.parent)) paths = await walkFs(store.fs(name))
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
 * Walks committed trees through their merged index. A directory node shared by several snapshots
 * is checked once; its problems are reported under each snapshot's path to it.
 */
class IndexWalker {
  private readonly byNode = new Map<string, PathProblem[]>()
  private readonly chunkProblems = new Map<string, string | undefined>()
  private readonly packSizes: Map<number, number>

  constructor(private readonly store: Store) {
    this.packSizes = new Map(store.db.packs.list().map((p) => [p.id, p.size]))
  }

  async committed(name: string, r: SnapshotRecord): Promise<PathProblem[]> {
    if (!r.index || !r.layer) return [{ path: '/', problem: 'committed without an index: the whole tree is lost' }]
    // inodes named through `links` differ per snapshot: such a tree is not shared node by node
    const shareable = r.links === undefined || Object.keys(r.links).length === 0
    const tree = (await this.store.tree(name)) as IndexTree
    return (await this.dirProblems(tree, tree.root, shareable)).map((p) => ({ path: p.path || '/', problem: p.problem }))
  }

  /** Problems under a directory, with paths relative to it ('' is the directory itself). */
  private async dirProblems(tree: IndexTree, node: IndexLowerNode, shareable: boolean): Promise<PathProblem[]> {
    const id = shareable ? node.node : undefined
    const hit = id === undefined ? undefined : this.byNode.get(id)
    if (hit) return hit
    const found: PathProblem[] = []
    try {
      for (const [child, n] of await tree.list(node)) {
        const rel = `/${child}`
        let rec: InodeRecord | undefined
        try {
          rec = await tree.inode(n)
        } catch (err) {
          found.push({ path: rel, problem: (err as Error).message })
        }
        // a directory whose inode is lost may still list its names: what lies below is reported one by one
        if (n.type === T.DIR) {
          for (const p of await this.dirProblems(tree, n, shareable)) found.push({ path: rel + p.path, problem: p.problem })
        } else if (n.type === T.REG && rec) {
          const problem = await this.fileProblem(rec)
          if (problem) found.push({ path: rel, problem })
        }
      }
    } catch (err) {
      found.push({ path: '', problem: `directory listing lost: ${(err as Error).message}` })
    }
    if (id !== undefined) this.byNode.set(id, found)
    return found
  }

  private async fileProblem(rec: InodeRecord): Promise<string | undefined> {
    let refs: Buffer[]
    try {
      refs = await referencedChunks(rec, this.store.chunks)
    } catch (err) {
      return (err as Error).message
    }
    const missing: string[] = []
    for (const ref of refs) {
      const hex = refHex(ref)
      if (!this.chunkProblems.has(hex)) this.chunkProblems.set(hex, await this.chunkProblem(hex))
      const problem = this.chunkProblems.get(hex)
      if (problem) missing.push(problem)
    }
    if (missing.length === 0) return undefined
    return `${missing.length} of ${refs.length} chunk(s) lost (${missing[0]}${missing.length > 1 ? ', …' : ''})`
  }

  private async chunkProblem(hex: string): Promise<string | undefined> {
    try {
      const where = await this.store.db.getRaw(packedKey(hex))
      if (!where) return (await this.store.db.getRaw(chunkKey(hex))) ? undefined : `chunk ${hex} is missing`
      const at = decodePointer(where)
      const size = this.packSizes.get(at.pack)
      if (size === undefined) return `chunk ${hex}: pack ${packFileName(at.pack)} is missing`
      if (at.offset + at.length > size) return `chunk ${hex}: pack ${packFileName(at.pack)} is too short`
      return undefined
    } catch (err) {
      return `chunk ${hex}: ${(err as Error).message}`
    }
  }
}

/** An active snapshot's tree as a reader sees it: every directory listed, every file read to its end. */
async function walkFs(fs: SnapshotFs): Promise<PathProblem[]> {
  const out: PathProblem[] = []
  const buf = Buffer.allocUnsafe(READ_PIECE)
  const visit = async (path: string): Promise<void> => {
    let names
    try {
      names = await fs.readdir(path, { withFileTypes: true })
    } catch (err) {
      out.push({ path, problem: `directory listing lost: ${(err as Error).message}` })
      return
    }
    for (const d of names) {
      const p = joinPath(path, d.name)
      try {
        const st = await fs.lstat(p)
        if (st.isDirectory()) await visit(p)
        else if (st.isFile()) {
          const h = await fs.open(p, 'r')
          try {
            for (let pos = 0; pos < st.size; pos += READ_PIECE) await h.read(buf, 0, READ_PIECE, pos)
          } finally {
            await h.close()
          }
        }
      } catch (err) {
        out.push({ path: p, problem: (err as Error).message })
      }
    }
  }
  await visit('/')
  return out
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
