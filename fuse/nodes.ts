import { FUSE_ROOT_ID } from './kernel.js'

/** One name of an inode the kernel knows: its parent's nodeid and the name in that parent. */
interface Link {
  parent: number
  name: string
}

interface Node {
  /** Lookups the kernel holds (it returns them with FORGET). */
  lookups: number
  /** Every name under which the kernel looked this inode up and that was not removed since. */
  links: Link[]
  /** Split tables only: the inode number the node stands for. */
  ino?: number
  /** Split tables only: the node is the one name of a lower hard link a copy-up would break away. */
  split?: boolean
}

const sameLink = (l: Link, parent: number, name: string): boolean => l.parent === parent && l.name === name
const linkKey = (parent: number, name: string): string => `${parent}/${name}`

/**
 * The inodes the kernel holds references to, by nodeid, and the names that reach them.
 *
 * Where hard links survive copy-up (a store upper), nodeids are Strata's inode numbers, so a
 * hard link is one kernel inode, as on the kernel's overlay. Where a copy-up breaks them (a
 * directory upper, as the kernel without an index), the table splits: the names of a lower hard
 * link not yet copied up each get a nodeid of their own (a `split` node), since a copy-up through
 * one of them gives that name a new inode while the others keep the lower one, and one kernel
 * inode for all of them would show one name's changes through the others. Every other inode
 * (upper files, hard-linked there or not, dirs, lower files with one name) has one nodeid for all
 * its names, as the kernel's overlay has one inode for them. When a split name is copied up, its
 * node goes on as the node of the new inode: the kernel's inode, its open files and caches, are
 * that name's.
 *
 * The engine works on paths: a node's path is rebuilt from its parent chain, which keeps a
 * directory rename one update however many nodes lie below it.
 */
/** The path of `name` in the directory at path `dir`. */
export const pathIn = (dir: string, name: string): string => (dir === '/' ? `/${name}` : `${dir}/${name}`)

export class NodeTable {
  private readonly nodes = new Map<number, Node>([[FUSE_ROOT_ID, { lookups: 1, links: [] }]])
  /** Which node each known name leads to: one name, one inode. */
  private readonly byName = new Map<string, number>()
  /** Split tables: the nodeids standing for each inode, the one its unsplit names share, and the next nodeid to hand out. */
  private readonly idsOf = new Map<number, Set<number>>()
  private readonly sharedOf = new Map<number, number>()
  private nextId = 2

  constructor(private readonly splitLowerLinks = false) {}

  /** Whether nodes are handed out per name for lower hard links (and nodeids are not inode numbers). */
  get splits(): boolean {
    return this.splitLowerLinks
  }

  /**
   * The kernel learned `name` in `parent` as inode `ino` (a LOOKUP, CREATE, MKDIR… reply), and
   * holds one more lookup of it: the nodeid it knows it by. `split`: the name is a lower hard link
   * that a copy-up would break away from its other names (SnapshotFs.splitsOnCopyUp).
   */
  remember(parent: number, name: string, ino: number, split = false): number {
    const key = linkKey(parent, name)
    const before = this.byName.get(key)
    if (before !== undefined) this.refresh(before, ino, split)
    const nodeid = this.nodeFor(before, ino, split)
    const node = this.nodes.get(nodeid)!
    node.lookups++
    if (before === nodeid) return nodeid
    if (before !== undefined) this.unlinkName(before, parent, name)
    node.links.push({ parent, name })
    this.byName.set(key, nodeid)
    return nodeid
  }

  /**
   * The name of a split node now shows inode `ino`: when that is a copy-up, the node (the kernel's
   * inode, with the files open on it) is the copy's from now on, and shares its changes.
   */
  refresh(nodeid: number, ino: number, split: boolean): void {
    const node = this.nodes.get(nodeid)
    if (!node?.split || split || node.ino === ino) return
    this.dropId(nodeid, node.ino!)
    node.ino = ino
    node.split = false
    this.addId(nodeid, ino)
    if (!this.sharedOf.has(ino)) this.sharedOf.set(ino, nodeid)
  }

  /** Whether a node is a split name of a lower hard link, whose inode a change may replace. */
  isSplit(nodeid: number): boolean {
    return this.nodes.get(nodeid)?.split === true
  }

  private nodeFor(before: number | undefined, ino: number, split: boolean): number {
    if (!this.splitLowerLinks) {
      if (!this.nodes.has(ino)) this.nodes.set(ino, { lookups: 0, links: [] })
      return ino
    }
    if (split) {
      const same = before !== undefined && this.nodes.get(before)
      if (same && same.split && same.ino === ino) return before!
      return this.add(ino, true)
    }
    return this.sharedOf.get(ino) ?? this.add(ino, false)
  }

  private add(ino: number, split: boolean): number {
    const nodeid = this.nextId++
    this.nodes.set(nodeid, { lookups: 0, links: [], ino, split })
    this.addId(nodeid, ino)
    if (!split) this.sharedOf.set(ino, nodeid)
    return nodeid
  }

  private addId(nodeid: number, ino: number): void {
    let ids = this.idsOf.get(ino)
    if (!ids) this.idsOf.set(ino, (ids = new Set()))
    ids.add(nodeid)
  }

  private dropId(nodeid: number, ino: number): void {
    const ids = this.idsOf.get(ino)
    ids?.delete(nodeid)
    if (ids?.size === 0) this.idsOf.delete(ino)
    if (this.sharedOf.get(ino) === nodeid) this.sharedOf.delete(ino)
  }

  private unlinkName(nodeid: number, parent: number, name: string): void {
    const node = this.nodes.get(nodeid)
    if (node) node.links = node.links.filter((l) => !sameLink(l, parent, name))
  }

  forget(nodeid: number, count: number): void {
    if (nodeid === FUSE_ROOT_ID) return
    const node = this.nodes.get(nodeid)
    if (!node) return
    node.lookups -= count
    if (node.lookups > 0) return
    for (const l of node.links) if (this.byName.get(linkKey(l.parent, l.name)) === nodeid) this.byName.delete(linkKey(l.parent, l.name))
    this.nodes.delete(nodeid)
    if (node.ino !== undefined) this.dropId(nodeid, node.ino)
  }

  /**
   * The other nodeids of the same inode (split tables only): their cached attributes and data go
   * stale with it. A split node has them until its name is copied up; a copied-up name's node
   * has them when the new inode had a node of its own before the copy's node was refreshed.
   */
  siblings(nodeid: number): number[] {
    const ino = this.nodes.get(nodeid)?.ino
    const ids = ino === undefined ? undefined : this.idsOf.get(ino)
    return ids && ids.size > 1 ? [...ids].filter((id) => id !== nodeid) : []
  }

  /** The nodeid a name leads to, if the kernel knows it. */
  nodeidOf(parent: number, name: string): number | undefined {
    return this.byName.get(linkKey(parent, name))
  }

  /** The path of a node, or null when every name the kernel knew it by is gone (unlinked, still open). */
  path(nodeid: number): string | null {
    if (nodeid === FUSE_ROOT_ID) return '/'
    const link = this.nodes.get(nodeid)?.links[0]
    if (!link) return null
    const parent = this.path(link.parent)
    return parent === null ? null : pathIn(parent, link.name)
  }

  /** The path of `name` in directory node `parent`. */
  childPath(parent: number, name: string): string | null {
    const p = this.path(parent)
    return p === null ? null : pathIn(p, name)
  }

  /** The parent nodeid through which the kernel knows a directory (itself for the root). */
  parentOf(nodeid: number): number {
    return this.nodes.get(nodeid)?.links[0]?.parent ?? FUSE_ROOT_ID
  }

  /** A name was removed (unlink, rmdir). */
  removed(parent: number, name: string): void {
    const key = linkKey(parent, name)
    const nodeid = this.byName.get(key)
    if (nodeid === undefined) return
    this.byName.delete(key)
    this.unlinkName(nodeid, parent, name)
  }

  /** A name moved, replacing what the new name held; with `exchange` the two names swapped inodes. */
  renamed(parent: number, name: string, newParent: number, newName: string, exchange: boolean): void {
    const fromKey = linkKey(parent, name)
    const toKey = linkKey(newParent, newName)
    const moving = this.byName.get(fromKey)
    const replaced = this.byName.get(toKey)
    this.byName.delete(fromKey)
    this.byName.delete(toKey)
    if (replaced !== undefined) this.unlinkName(replaced, newParent, newName)
    if (moving !== undefined) {
      this.unlinkName(moving, parent, name)
      this.nodes.get(moving)?.links.push({ parent: newParent, name: newName })
      this.byName.set(toKey, moving)
    }
    if (exchange && replaced !== undefined) {
      this.nodes.get(replaced)?.links.push({ parent, name })
      this.byName.set(fromKey, replaced)
    }
  }
}
