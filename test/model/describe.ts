import { TYPE_BITS, hashOf, type Desc, type DirEntryValue, type MNode } from './values.js'
import type { FsModel } from './tree.js'

/** What the model shows of its inodes, in the terms compared with the store's. */

export function dirEntries(dir: MNode): DirEntryValue[] {
  return [...dir.entries].map(([name, n]) => ({ name, type: n.kind, ino: n.id })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

export function describe(node: MNode): Desc {
  const d: Desc = {
    type: node.kind,
    mode: TYPE_BITS[node.kind] | node.perm,
    uid: node.uid,
    gid: node.gid,
    ino: node.id,
    nlink: node.kind === 'dir' ? 0 : node.nlink,
    xattrs: Object.fromEntries([...node.xattrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.toString('hex')])),
  }
  if (node.kind === 'dir') d.subdirs = [...node.entries.values()].filter((c) => c.kind === 'dir').length
  else d.size = node.kind === 'symlink' ? Buffer.byteLength(node.target) : node.data.length
  if (node.kind === 'file') d.hash = hashOf(node.data)
  if (node.kind === 'symlink') d.target = node.target
  if (node.atime !== undefined) d.atime = node.atime
  if (node.mtime !== undefined) d.mtime = node.mtime
  return d
}

/** Every name of the tree (symlinks not followed), '/' first, with what stat shows of it. */
export function captureModel(model: FsModel): Map<string, Desc> {
  const out = new Map<string, Desc>()
  const visit = (path: string, node: MNode): void => {
    out.set(path, describe(node))
    if (node.kind !== 'dir') return
    for (const [name, child] of node.entries) visit(path === '/' ? `/${name}` : `${path}/${name}`, child)
  }
  visit('/', model.root)
  return out
}
