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
}

const sameLink = (l: Link, parent: number, name: string): boolean => l.parent === parent && l.name === name

/**
 * The inodes the kernel holds references to, by nodeid, and the names that reach them.
 *
 * Where hard links survive copy-up (a store upper), nodeids are Strata's inode numbers, so a
 * hard link is one kernel inode, as on the kernel's overlay. Where a copy-up splits them (a
 * directory upper, as the kernel without an index), one kernel inode for both names would let
 * one name's changes show through the other: each name then gets a nodeid of its own (`perName`),
 * and only st_ino tells that they are one file.
 *
 * The engine works on paths: a node's path is rebuilt from its parent chain, which keeps a
 * directory rename one update however many nodes lie below it.
 */
const linkKey = (parent: number, name: string): string => `${parent}/${name}`

export class NodeTable {
  private readonly nodes = new Map<number, Node>([[FUSE_ROOT_ID, { lookups: 1, links: [] }]])
  /** Which node each known name leads to: one name, one inode. */
  private readonly byName = new Map<string, number>()
  /** perName: which inode number each nodeid stands for, the nodeids of each inode, and the next nodeid to hand out. */
  private readonly inoOf = new Map<number, number>()
  private readonly idsOf = new Map<number, Set<number>>()
  private nextId = 2

  constructor(private readonly perName = false) {}

  /**
   * The kernel learned `name` in `parent` as inode `ino` (a LOOKUP, CREATE, MKDIR… reply), and
   * holds one more lookup of it: the nodeid it knows it by.
   */
  remember(parent: number, name: string, ino: number): number {
    const key = linkKey(parent, name)
    const before = this.byName.get(key)
    const nodeid = !this.perName ? ino : before !== undefined && this.inoOf.get(before) === ino ? before : this.nextId++
    let node = this.nodes.get(nodeid)
    if (!node) this.nodes.set(nodeid, (node = { lookups: 0, links: [] }))
    if (this.perName && !this.inoOf.has(nodeid)) {
      this.inoOf.set(nodeid, ino)
      let ids = this.idsOf.get(ino)
      if (!ids) this.idsOf.set(ino, (ids = new Set()))
      ids.add(nodeid)
    }
    node.lookups++
    if (before === nodeid) return nodeid
    if (before !== undefined) this.unlinkName(before, parent, name)
    node.links.push({ parent, name })
    this.byName.set(key, nodeid)
    return nodeid
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
    const ino = this.inoOf.get(nodeid)
    if (ino === undefined) return
    this.inoOf.delete(nodeid)
    const ids = this.idsOf.get(ino)
    ids?.delete(nodeid)
    if (ids?.size === 0) this.idsOf.delete(ino)
  }

  /** The other nodeids of the same inode (perName only): their cached attributes and data go stale with it. */
  siblings(nodeid: number): number[] {
    const ino = this.inoOf.get(nodeid)
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
    if (parent === null) return null
    return parent === '/' ? `/${link.name}` : `${parent}/${link.name}`
  }

  /** The path of `name` in directory node `parent`. */
  childPath(parent: number, name: string): string | null {
    const p = this.path(parent)
    if (p === null) return null
    return p === '/' ? `/${name}` : `${p}/${name}`
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
