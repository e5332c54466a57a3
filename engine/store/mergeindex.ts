import type { Db, Txn } from './db.js'
import { inodeKey, nodeKey } from './keys.js'
import { RecordCache, type IndexListing } from './recordcache.js'
import { ROOT_INO, type InodeRecord } from './records.js'
import type { LoadedLayer } from './loadedlayer.js'
import { fsError } from '../errors.js'
import { T, isDirType, type LowerNode, type LowerTree } from '../overlay/node.js'
import { lowerPathLookup } from '../overlay/namei.js'
import { parseRedirect } from '../overlay/redirect.js'
import { isOpaqueDir, isWhiteoutEntry } from '../overlay/whiteout.js'

/**
 * The merged directory index of a committed snapshot: for every directory of the merged tree, its
 * final names, each with the layer holding the inode. A lookup in a committed stack reads this
 * index only, so its cost does not grow with the number of layers. A commit builds the new index
 * from the parent's by rewriting only the directories the layer touches (and only the pages of a
 * large directory that change); everything else is shared, as git shares trees.
 */

/** [name, ino, type, layer holding the inode, index node of a dir] */
export type IndexEntry = [name: string, ino: number, type: number, layer: string, node?: string]

/** A directory node: its entries, or for a large directory, pages of entries by first name. */
export type IndexNodeRecord = { e: IndexEntry[] } | { p: Array<[first: string, node: string]> }

export interface IndexLowerNode extends LowerNode {
  layer: string
  node?: string
}

const LEAF_MAX = 1024
const PAGE_FILL = 512

/** The decoded records of committed snapshots, shared by every snapshot of a Store (recordcache.ts). */
export type NodeCache = RecordCache
export const newNodeCache = (): NodeCache => new RecordCache()

async function loadNode(db: Db, cache: NodeCache, id: string): Promise<IndexNodeRecord> {
  const hit = cache.get(id)
  if (hit) return hit
  const rec = await db.get<IndexNodeRecord>(nodeKey(id))
  if (!rec) throw fsError('EIO', 'lookup', undefined, `index node ${id} is missing from the store`)
  cache.set(id, rec)
  return rec
}

function search<T>(arr: T[], name: string, key: (t: T) => string): number {
  let lo = 0, hi = arr.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const k = key(arr[mid])
    if (k === name) return mid
    if (k < name) lo = mid + 1
    else hi = mid - 1
  }
  return -(lo + 1)
}

const toLower = (e: IndexEntry): IndexLowerNode => ({ ino: e[1], type: e[2], layer: e[3], node: e[4] })

export class IndexTree implements LowerTree {
  readonly root: IndexLowerNode

  constructor(private readonly db: Db, private readonly cache: NodeCache, rootNode: string, rootLayer: string, private readonly links: Record<string, string> = {}) {
    this.root = { ino: ROOT_INO, type: T.DIR, layer: rootLayer, node: rootNode }
  }

  async lookup(dir: LowerNode, name: string): Promise<IndexLowerNode | undefined> {
    const id = (dir as IndexLowerNode).node
    if (id === undefined) return undefined
    const leaf = await this.leafFor(id, name)
    if (!leaf) return undefined
    const i = search(leaf, name, (e) => e[0])
    return i >= 0 ? toLower(leaf[i]) : undefined
  }

  private async leafFor(id: string, name: string): Promise<IndexEntry[] | undefined> {
    const n = await loadNode(this.db, this.cache, id)
    if ('e' in n) return n.e
    let i = search(n.p, name, (p) => p[0])
    if (i < 0) i = -i - 2
    if (i < 0) return undefined
    const page = await loadNode(this.db, this.cache, n.p[i][1])
    return 'e' in page ? page.e : undefined
  }

  /** The names of a dir, shared with every other reader of the same index node: read-only. */
  async list(dir: LowerNode): Promise<Array<[string, IndexLowerNode]>> {
    const id = (dir as IndexLowerNode).node
    if (id === undefined) return []
    const listing: IndexListing = this.cache.listing(id) ?? this.cache.setListing(id, (await entriesOf(this.db, this.cache, id)).map((e) => [e[0], toLower(e)]))
    return listing as Array<[string, IndexLowerNode]>
  }

  /** The record of a lower inode, shared with every other reader (frozen). */
  async inode(node: LowerNode): Promise<InodeRecord> {
    const n = node as IndexLowerNode
    const layer = this.links[n.ino] ?? n.layer
    const hit = this.cache.inode(layer, n.ino)
    if (hit) return hit
    const rec = await this.db.get<InodeRecord>(inodeKey(layer, n.ino))
    if (!rec) throw fsError('EIO', 'stat', undefined, `layer ${layer} has no inode ${n.ino}`)
    return this.cache.setInode(layer, n.ino, rec)
  }
}

async function entriesOf(db: Db, cache: NodeCache, id: string): Promise<IndexEntry[]> {
  const n = await loadNode(db, cache, id)
  if ('e' in n) return n.e
  const out: IndexEntry[] = []
  for (const [, pid] of n.p) {
    const page = await loadNode(db, cache, pid)
    if ('e' in page) out.push(...page.e)
  }
  return out
}

/** The tree of an empty parent. */
export class EmptyTree implements LowerTree {
  readonly root: LowerNode = { ino: ROOT_INO, type: T.DIR }
  async lookup(): Promise<undefined> { return undefined }
  async list(): Promise<Array<[string, LowerNode]>> { return [] }
  /** Only the root exists: an empty dir owned by root. */
  async inode(): Promise<InodeRecord> {
    return { mode: 0o40755, uid: 0, gid: 0, rdev: 0, size: 0, nlink: 2, atime: [0, 0], mtime: [0, 0], ctime: [0, 0] }
  }
}

export interface BuildContext {
  db: Db
  cache: NodeCache
  txn: Txn
  allocNodeId: () => Promise<string>
}

/**
 * Builds the index of `layer` over `parent` (undefined: the empty tree) and returns the root node
 * id. Store layers were written by Strata, so their redirects are trusted and always followed.
 */
export async function buildIndex(ctx: BuildContext, layer: LoadedLayer, parent: IndexTree | undefined): Promise<string> {
  const lower: LowerTree = parent ?? new EmptyTree()
  const redirectCfg = { policy: 'on' as const, max: 4096, alwaysFollow: true }

  const buildDir = async (dirIno: number, lowerDir: IndexLowerNode | undefined, path: string): Promise<string> => {
    const changes = new Map<string, IndexEntry | null>()
    for (const [name, rec] of layer.entries(dirIno)) {
      if (isWhiteoutEntry(rec)) { changes.set(name, null); continue }
      const [ino, type] = rec
      if (!isDirType(type)) { changes.set(name, [name, ino, type, layer.id]); continue }
      const inode = layer.dirInode(ino)
      let lowerChild: LowerNode | undefined
      if (!isOpaqueDir(inode)) {
        if (inode?.redirect !== undefined) {
          const r = parseRedirect(inode.redirect, redirectCfg, `${path}/${name}`)
          lowerChild = r.absolute ? await lowerPathLookup(lower, r.components) : lowerDir ? await lower.lookup(lowerDir, r.name) : undefined
        } else if (lowerDir) {
          lowerChild = await lower.lookup(lowerDir, name)
        }
      }
      const childLower = lowerChild && isDirType(lowerChild.type) ? (lowerChild as IndexLowerNode) : undefined
      changes.set(name, [name, ino, type, layer.id, await buildDir(ino, childLower, `${path}/${name}`)])
    }
    if (lowerDir?.node !== undefined && changes.size === 0) return lowerDir.node
    return writeDir(ctx, lowerDir?.node, changes)
  }

  return buildDir(ROOT_INO, lower.root as IndexLowerNode, '')
}

function applyChanges(entries: IndexEntry[], changes: Map<string, IndexEntry | null>): IndexEntry[] {
  const byName = new Map(entries.map((e) => [e[0], e]))
  for (const [name, e] of changes) {
    if (e === null) byName.delete(name)
    else byName.set(name, e)
  }
  return [...byName.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

async function putNode(ctx: BuildContext, rec: IndexNodeRecord): Promise<string> {
  const id = await ctx.allocNodeId()
  ctx.txn.put(nodeKey(id), rec)
  ctx.cache.set(id, rec)
  return id
}

async function putLeaves(ctx: BuildContext, entries: IndexEntry[]): Promise<Array<[string, string]>> {
  const pages: Array<[string, string]> = []
  for (let i = 0; i < entries.length; i += PAGE_FILL) {
    const slice = entries.slice(i, i + PAGE_FILL)
    pages.push([slice[0][0], await putNode(ctx, { e: slice })])
  }
  return pages
}

/** Writes a directory node: the base node with changes applied, rewriting only changed pages. */
async function writeDir(ctx: BuildContext, base: string | undefined, changes: Map<string, IndexEntry | null>): Promise<string> {
  const baseRec = base === undefined ? { e: [] as IndexEntry[] } : await loadNode(ctx.db, ctx.cache, base)
  if ('e' in baseRec) {
    const merged = applyChanges(baseRec.e, changes)
    if (merged.length <= LEAF_MAX) return putNode(ctx, { e: merged })
    return putNode(ctx, { p: await putLeaves(ctx, merged) })
  }
  // Large directory: route each change to the page whose range holds its name.
  const pages = baseRec.p
  const perPage = new Map<number, Map<string, IndexEntry | null>>()
  for (const [name, e] of changes) {
    let i = search(pages, name, (p) => p[0])
    if (i < 0) i = Math.max(0, -i - 2)
    if (!perPage.has(i)) perPage.set(i, new Map())
    perPage.get(i)!.set(name, e)
  }
  const out: Array<[string, string]> = []
  for (let i = 0; i < pages.length; i++) {
    const ch = perPage.get(i)
    if (!ch) { out.push(pages[i]); continue }
    const page = await loadNode(ctx.db, ctx.cache, pages[i][1])
    const merged = applyChanges('e' in page ? page.e : [], ch)
    if (merged.length === 0) continue
    if (merged.length <= LEAF_MAX) out.push([merged[0][0], await putNode(ctx, { e: merged })])
    else out.push(...(await putLeaves(ctx, merged)))
  }
  if (out.length === 0) return putNode(ctx, { e: [] })
  return putNode(ctx, { p: out })
}

/** Node ids reachable from a root and not in `seen` (for gc and fsck); adds them to `seen`. */
export async function* reachableNodes(db: Db, cache: NodeCache, root: string, seen: Set<string>): AsyncGenerator<[string, IndexNodeRecord]> {
  const stack = [root]
  while (stack.length > 0) {
    const id = stack.pop()!
    if (seen.has(id)) continue
    seen.add(id)
    const n = await loadNode(db, cache, id)
    yield [id, n]
    if ('p' in n) for (const [, pid] of n.p) stack.push(pid)
    else for (const e of n.e) if (e[4] !== undefined) stack.push(e[4])
  }
}
