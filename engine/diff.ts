import type { Store } from './store.js'
import type { ChunkStore } from './store/chunks.js'
import { CHUNK_SIZE, HOLE_REF, REF_SIZE, isHole } from './store/chunks.js'
import { FileContent, loadRefs } from './store/filedata.js'
import type { InodeRecord } from './store/records.js'
import { ROOT_INO } from './store/records.js'
import { StoreLayer } from './store/layer.js'
import { EmptyTree, type IndexLowerNode } from './store/mergeindex.js'
import { T, isDirType, joinPath, type LowerNode, type LowerTree, type OvlNode } from './overlay/node.js'
import { lookupChild, nodeInode, rootNode, type NameiContext } from './overlay/namei.js'
import { redirectConfig } from './overlay/redirect.js'
import { isWhiteoutEntry } from './overlay/whiteout.js'
import { toNs } from './overlay/stats.js'
import { sameXattrs } from './host/xattrs.js'
import type { DiffEntry } from './types.js'

/**
 * What changed going from the merged tree of snapshot `a` to that of `b`. A path is 'modified'
 * when its type, mode, owner, size, content, symlink target, device number, xattrs or mtime
 * differ (atime and ctime are not compared). An added or deleted dir is one entry, and so is a
 * path whose type changed; a renamed path is a deletion and an addition. The root is not listed.
 *
 * Committed trees are compared through their merged indexes: a dir whose index node is the same
 * on both sides holds the same entries, and an entry naming the same layer and inode names the
 * same record, so unchanged parts cost nothing. File contents are compared by chunk refs.
 */
export async function diff(store: Store, a: string, b: string): Promise<DiffEntry[]> {
  if (a === b) {
    if (a !== '') await store.stat(a)
    return []
  }
  const [sa, sb] = [await sourceOf(store, a), await sourceOf(store, b)]
  const out: DiffEntry[] = []
  await new TreeDiff(sa, sb, store.chunks, out).compareDir('/', sa.root, sb.root)
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0))
}

/** A node of either side: answered by a merged index, or by an active snapshot's overlay. */
interface DiffNode {
  type: number
  ino: number
  /** Index answers: the layer the index entry names, and a dir's index node. */
  layer?: string
  index?: string
  /** Overlay answers: a node present in the active snapshot's upper layer. */
  ovl?: OvlNode
}

interface TreeSource {
  readonly root: DiffNode
  list(dir: DiffNode): Promise<Map<string, DiffNode>>
  record(node: DiffNode): Promise<InodeRecord>
  /** Names an immutable record (a sealed layer's inode), or undefined when there is none. */
  recordId(node: DiffNode): string | undefined
  /** Where each hard-linked inode's record lives, when not in the layer its entry names. */
  readonly overrides: Map<number, string>
}

async function sourceOf(store: Store, key: string): Promise<TreeSource> {
  if (key === '') return new IndexSource(new EmptyTree(), {})
  const r = await store.record(key, 'diff')
  if (r.kind === 'committed') return new IndexSource(await store.tree(key), r.links ?? {})
  const parentLinks = r.parent === '' ? {} : (await store.record(r.parent, 'diff')).links ?? {}
  if (r.kind === 'view') return new IndexSource(await store.tree(r.parent), parentLinks)
  // open files of an active snapshot may hold unwritten data
  await store.lock.run(() => store.flushAll())
  const upper = new StoreLayer(r.layer!, store.db)
  const overlaid = new Set<number>()
  for await (const [ino, rec] of upper.inodes()) if (!isDirType(rec.mode >> 12)) overlaid.add(ino)
  return new OverlaySource({ upper, lower: await store.tree(r.parent), redirect: redirectConfig({}) }, parentLinks, overlaid)
}

const fromIndex = (n: LowerNode): DiffNode => ({ type: n.type, ino: n.ino, layer: n.layer, index: (n as IndexLowerNode).node })
const asLower = (n: DiffNode): IndexLowerNode => ({ ino: n.ino, type: n.type, layer: n.layer ?? '', node: n.index })

class IndexSource implements TreeSource {
  readonly root: DiffNode
  readonly overrides: Map<number, string>

  constructor(private readonly tree: LowerTree, links: Record<string, string>) {
    this.root = fromIndex(tree.root)
    this.overrides = new Map(Object.entries(links).map(([ino, layer]) => [Number(ino), layer]))
  }

  async list(dir: DiffNode): Promise<Map<string, DiffNode>> {
    return new Map((await this.tree.list(asLower(dir))).map(([name, n]) => [name, fromIndex(n)]))
  }
  record(node: DiffNode): Promise<InodeRecord> {
    return this.tree.inode(asLower(node))
  }
  recordId(node: DiffNode): string | undefined {
    if (node.layer === undefined) return undefined
    return `${this.overrides.get(node.ino) ?? node.layer}:${node.ino}`
  }
}

/**
 * An active snapshot, merged as its overlay merges it. What lies only in the parent is answered
 * by the parent's index, so it still compares cheaply against other committed trees.
 */
class OverlaySource implements TreeSource {
  readonly root: DiffNode
  readonly overrides: Map<number, string>

  /** `overlaid`: non-dir inodes with a record in the upper layer, which hides the parent's. */
  constructor(private readonly ctx: NameiContext & { upper: StoreLayer }, parentLinks: Record<string, string>, private readonly overlaid: Set<number>) {
    const root = rootNode(ctx)
    this.root = { type: T.DIR, ino: ROOT_INO, ovl: root }
    this.overrides = new Map(Object.entries(parentLinks).map(([ino, layer]) => [Number(ino), layer]))
    for (const ino of overlaid) this.overrides.set(ino, `upper:${ctx.upper.id}`)
  }

  async list(dir: DiffNode): Promise<Map<string, DiffNode>> {
    const out = new Map<string, DiffNode>()
    const ovl = dir.ovl
    if (!ovl) {
      for (const [name, n] of await this.ctx.lower.list(asLower(dir))) out.set(name, fromIndex(n))
      return out
    }
    const seen = new Set<string>()
    if (ovl.upper) {
      for (const [name, e] of await this.ctx.upper.entries(ovl.ino)) {
        seen.add(name)
        if (isWhiteoutEntry(e)) continue
        const node = (await lookupChild(this.ctx, ovl, name)).node
        if (node) out.set(name, node.upper ? { type: node.type, ino: node.ino, ovl: node } : fromIndex(node.lower!))
      }
    }
    if (ovl.lower && !ovl.opaque) {
      for (const [name, n] of await this.ctx.lower.list(ovl.lower)) if (!seen.has(name)) out.set(name, fromIndex(n))
    }
    return out
  }

  async record(node: DiffNode): Promise<InodeRecord> {
    if (node.ovl) return nodeInode(this.ctx, node.ovl)
    const rec = await this.ctx.lower.inode(asLower(node))
    // a hard link copied up through another name shows the upper record, as the overlay does
    if (!isDirType(node.type) && rec.nlink > 1 && this.overlaid.has(node.ino)) return (await this.ctx.upper.inode(node.ino)) ?? rec
    return rec
  }

  recordId(node: DiffNode): string | undefined {
    if (node.ovl || node.layer === undefined || (!isDirType(node.type) && this.overlaid.has(node.ino))) return undefined
    return `${this.overrides.get(node.ino) ?? node.layer}:${node.ino}`
  }
}

class TreeDiff {
  /** Inodes whose record the two sides find in different places although their entries agree. */
  private readonly moved = new Set<number>()

  constructor(private readonly a: TreeSource, private readonly b: TreeSource, private readonly chunks: ChunkStore, private readonly out: DiffEntry[]) {
    for (const ino of new Set([...a.overrides.keys(), ...b.overrides.keys()])) {
      if (a.overrides.get(ino) !== b.overrides.get(ino)) this.moved.add(ino)
    }
  }

  async compareDir(path: string, da: DiffNode, db: DiffNode): Promise<void> {
    if (da.index !== undefined && da.index === db.index) return this.compareSharedDir(path, da)
    const [la, lb] = [await this.a.list(da), await this.b.list(db)]
    for (const [name, na] of la) {
      const p = joinPath(path, name)
      const nb = lb.get(name)
      if (!nb) { this.out.push({ kind: 'deleted', path: p }); continue }
      if (na.type !== nb.type) { this.out.push({ kind: 'modified', path: p }); continue }
      if (!(await this.sameNode(na, nb))) this.out.push({ kind: 'modified', path: p })
      if (na.type === T.DIR) await this.compareDir(p, na, nb)
    }
    for (const name of lb.keys()) if (!la.has(name)) this.out.push({ kind: 'added', path: joinPath(path, name) })
  }

  /**
   * Both sides share this dir's index node, so every entry agrees; only hard-linked inodes whose
   * newest record the two sides find in different layers can still differ.
   */
  private async compareSharedDir(path: string, dir: DiffNode): Promise<void> {
    if (this.moved.size === 0) return
    for (const [name, n] of await this.a.list(dir)) {
      if (n.type === T.DIR) await this.compareSharedDir(joinPath(path, name), n)
      else if (this.moved.has(n.ino) && !(await this.sameNode(n, n))) this.out.push({ kind: 'modified', path: joinPath(path, name) })
    }
  }

  private async sameNode(na: DiffNode, nb: DiffNode): Promise<boolean> {
    const ia = this.a.recordId(na)
    if (ia !== undefined && ia === this.b.recordId(nb)) return true
    return sameRecord(await this.a.record(na), await this.b.record(nb), this.chunks)
  }
}

async function sameRecord(a: InodeRecord, b: InodeRecord, chunks: ChunkStore): Promise<boolean> {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return false
  if (toNs(a.mtime) !== toNs(b.mtime) || (a.target ?? '') !== (b.target ?? '') || !sameXattrs(a.xattrs, b.xattrs)) return false
  if ((a.mode >> 12) !== T.REG) return true
  return a.size === b.size && sameContent(a, b, chunks)
}

/** Equal chunk refs mean equal data; refs that differ are compared by their bytes. */
async function sameContent(a: InodeRecord, b: InodeRecord, chunks: ChunkStore): Promise<boolean> {
  const size = a.size
  if (a.inline || b.inline || size <= 0) {
    const [x, y] = [await readAll(a, chunks), await readAll(b, chunks)]
    return x.equals(y)
  }
  const [ra, rb] = [await loadRefs(a, chunks), await loadRefs(b, chunks)]
  if (ra.equals(rb)) return true
  for (let i = 0; i * CHUNK_SIZE < size; i++) {
    const [x, y] = [refAt(ra, i), refAt(rb, i)]
    if (x.equals(y)) continue
    const len = Math.min(CHUNK_SIZE, size - i * CHUNK_SIZE)
    if (!(await chunkBytes(x, len, chunks)).equals(await chunkBytes(y, len, chunks))) return false
  }
  return true
}

const refAt = (refs: Buffer, i: number): Buffer => (i + 1) * REF_SIZE <= refs.length ? refs.subarray(i * REF_SIZE, (i + 1) * REF_SIZE) : HOLE_REF

/** A chunk as the file reads it: a chunk stored short reads as zeroes past its end. */
async function chunkBytes(ref: Buffer, len: number, chunks: ChunkStore): Promise<Buffer> {
  const out = Buffer.alloc(len)
  if (!isHole(ref)) (await chunks.get(ref)).copy(out, 0, 0, len)
  return out
}

/** Whole content of a small file (inline ones are at most 4 KiB). */
async function readAll(rec: InodeRecord, chunks: ChunkStore): Promise<Buffer> {
  const buf = Buffer.alloc(rec.size)
  await (await FileContent.load(rec, chunks)).read(buf, 0, rec.size, 0)
  return buf
}
