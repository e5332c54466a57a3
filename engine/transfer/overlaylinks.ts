import type { Store } from '../store.js'
import type { InodeRecord, SnapshotRecord } from '../store/records.js'
import { StoreLayer } from '../store/layer.js'
import { encode } from '../store/codec.js'
import { isDirType, type OvlNode } from '../overlay/node.js'
import { readMergedDir } from '../overlay/readdir.js'

/**
 * Hard links that per-layer dirs in the kernel's format cannot show as the snapshot shows them.
 *
 * The kernel shows each name with the inode of the layer the name is in, and cannot share an
 * inode across layers. The store can: a hard link copied up through one name keeps its other
 * names in lower layers while its record lives higher (the snapshot's `links`). An inode is
 * shown alike by the layer dirs only when all its merged names come from one layer, and that
 * layer's record is the one the snapshot shows; the others are "lifted": every name of theirs
 * goes into the top layer dir, as hard links of one file.
 */
export interface LiftedLinks {
  /** Each lifted inode: the record the snapshot shows, and its merged paths (sorted). */
  inodes: Array<{ ino: number; rec: InodeRecord; paths: string[] }>
  /** The merged record of every dir above a lifted name, by merged path ('/' left out). */
  dirs: Map<string, InodeRecord>
}

export async function liftedLinks(store: Store, key: string, r: SnapshotRecord): Promise<LiftedLinks> {
  const out: LiftedLinks = { inodes: [], dirs: new Map() }
  const candidates = await candidateInodes(store, r)
  if (candidates.size === 0) return out
  const ov = await store.overlayFor(key, {})
  const found = new Map<number, OvlNode[]>()
  const walk = async (dir: OvlNode): Promise<void> => {
    for (const m of await readMergedDir(ov, dir)) {
      if (!isDirType(m.type) && !candidates.has(m.ino)) continue
      const node = await ov.lookup(dir, m.name)
      if (!node) continue
      if (isDirType(node.type)) await walk(node)
      else found.set(node.ino, [...(found.get(node.ino) ?? []), node])
    }
  }
  await walk(ov.root())

  for (const [ino, names] of found) {
    const shown = await ov.inodeOf(names[0])
    const layers = new Set(names.map((n) => (n.upper ? ov.upper?.id : n.lower?.layer)))
    const [layer] = layers
    const own = layers.size === 1 && layer !== undefined ? await new StoreLayer(layer, store.db).inode(ino) : undefined
    if (own && sameRecord(own, shown)) continue
    out.inodes.push({ ino, rec: shown, paths: names.map((n) => n.path).sort() })
    for (const n of names) {
      for (let d = n.parent; d?.parent; d = d.parent) {
        if (out.dirs.has(d.path)) break
        out.dirs.set(d.path, await ov.inodeOf(d))
      }
    }
  }
  out.inodes.sort((a, b) => (a.paths[0] < b.paths[0] ? -1 : 1))
  return out
}

/**
 * Inodes that may be lifted, so that the merged tree is walked only when there are any: the
 * `links` of the committed snapshot below (every inode with several names, or with a record
 * above its names, is in them), and for an active snapshot the hard links its own layer holds
 * and records it holds without a name there (an unlink of one name of a lower hard link).
 */
async function candidateInodes(store: Store, r: SnapshotRecord): Promise<Set<number>> {
  const links = r.kind === 'committed' ? r.links : r.parent === '' ? undefined : (await store.record(r.parent, 'export')).links
  const out = new Set(Object.keys(links ?? {}).map(Number))
  if (r.kind !== 'active' || !r.layer) return out
  const upper = new StoreLayer(r.layer, store.db)
  const named = new Set<number>()
  for await (const [, , e] of upper.allEntries()) named.add(e[0])
  for await (const [ino, rec] of upper.inodes()) {
    if (!isDirType((rec.mode & 0o170000) >> 12) && (rec.nlink > 1 || !named.has(ino))) out.add(ino)
  }
  return out
}

/** Two records of one inode hold the same object (undefined fields and key order do not count). */
function sameRecord(a: InodeRecord, b: InodeRecord): boolean {
  return encode(canonical(a)).equals(encode(canonical(b)))
}

function canonical(rec: InodeRecord): Record<string, unknown> {
  const sorted = (o: object): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([x], [y]) => (x < y ? -1 : 1)))
  const out = sorted(rec)
  if (rec.xattrs) out.xattrs = sorted(rec.xattrs)
  return out
}
