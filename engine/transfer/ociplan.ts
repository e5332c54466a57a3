import { fsError } from '../errors.js'
import { T, isDirType, type LowerNode, type LowerTree, type OvlNode } from '../overlay/node.js'
import type { AttrChange } from '../overlay/populate.js'
import { storePath } from './ocipaths.js'

/**
 * What an OCI layer does to its parent's tree, member by member, in one place. The importer
 * runs the same plan twice: once over the whole tar before anything is written, so that a tar
 * refused for any member leaves the store exactly as it was, and once while applying it, where
 * the plan tells the applier what each member replaces.
 *
 * The rules (those of containerd's applier, with the OCI spec's whiteout rules):
 *   - A member replaces what is at its path, except that a dir over a dir merges with it.
 *   - `.wh.x` removes x and everything below it, unless this layer wrote x itself.
 *   - `.wh..wh..opq` in D removes, recursively, everything under D that this layer did not write.
 *   - A missing parent dir is made (root-owned, 0755), as Docker does.
 *   - No member may reach through a symlink (made by this layer or in the parent): it could point
 *     anywhere, and an extractor following it writes outside the place the name says. A parent
 *     that is not a dir is refused too.
 *
 * The plan is a tree of the paths the layer has touched. A node that is `cut` hides the parent's
 * object at its path (and all below); an `opaque` node hides the parent's objects below it; what
 * the layer wrote is visible whatever is hidden. Other paths show the parent's tree.
 */

export type Kind = 'dir' | 'symlink' | 'other'

export interface PlanNode {
  /** Written by this layer (a member, or a parent dir made for one). */
  kind?: Kind
  cut?: boolean
  opaque?: boolean
  children?: Map<string, PlanNode>
  /** Applying only: the store's node of a dir, once resolved or made. */
  ovl?: OvlNode
  /** Applying only: a dir member's attributes, set when the whole layer is in (children move a dir's times). */
  attrs?: AttrChange
}

/** What a member finds at its path, for the applier. */
export interface Placement {
  /** The node of the member's path (replaced by a fresh one when the member replaces something). */
  node: PlanNode
  /** What was there before the member: the applier removes it unless `merge`. */
  existing?: Kind
  /** A dir member over a dir: the two merge. */
  merge: boolean
}

const kindOfType = (type: number): Kind => (isDirType(type) ? 'dir' : type === T.LNK ? 'symlink' : 'other')

export class LayerPlan {
  readonly root: PlanNode = { kind: 'dir' }
  private readonly lowerCache = new Map<string, LowerNode | null>()

  constructor(private readonly parent: LowerTree | undefined, private readonly syscall: string) {}

  /** What is at `path` now: what the layer wrote, or the parent's object if nothing hides it. */
  async kindAt(path: readonly string[]): Promise<Kind | undefined> {
    let node: PlanNode | undefined = this.root
    let visible = true
    for (const name of path) {
      if (node?.opaque) visible = false
      node = node?.children?.get(name)
      if (node?.cut) visible = false
    }
    if (node?.kind) return node.kind
    if (!visible) return undefined
    const lower = await this.lowerAt(path)
    return lower ? kindOfType(lower.type) : undefined
  }

  /**
   * Checks the parents of `path` and makes the missing ones (as written dirs); returns the plan
   * node of each parent, root first. `name` is the member, for errors.
   */
  async parents(path: readonly string[], name: string): Promise<PlanNode[]> {
    const chain: PlanNode[] = [this.root]
    for (let i = 1; i < path.length; i++) {
      const dir = path.slice(0, i)
      const kind = await this.kindAt(dir)
      if (kind === 'symlink') throw this.throughSymlink(dir, name)
      if (kind === 'other') throw fsError('ENOTDIR', this.syscall, name, `'${storePath(dir)}' is not a directory`)
      const parent = chain[i - 1]
      let node = parent.children?.get(dir[i - 1])
      if (kind === undefined) {
        node = { kind: 'dir', cut: true }
        this.setChild(parent, dir[i - 1], node)
      } else if (!node) {
        node = {}
        this.setChild(parent, dir[i - 1], node)
      }
      chain.push(node)
    }
    return chain
  }

  /** A member that makes an object of `kind` at `path` (the root only takes a dir). */
  async place(path: readonly string[], kind: Kind, name: string): Promise<Placement> {
    if (path.length === 0) {
      if (kind !== 'dir') throw fsError('EINVAL', this.syscall, name, 'the root of a layer can only be a directory')
      return { node: this.root, existing: 'dir', merge: true }
    }
    const chain = await this.parents(path, name)
    const existing = await this.kindAt(path)
    const parent = chain[chain.length - 1]
    const last = path[path.length - 1]
    if (kind === 'dir' && existing === 'dir') {
      let node = parent.children?.get(last)
      if (!node) this.setChild(parent, last, (node = {}))
      node.kind = 'dir'
      return { node, existing, merge: true }
    }
    const node: PlanNode = { kind, cut: true }
    this.setChild(parent, last, node)
    return { node, existing, merge: false }
  }

  /**
   * A whiteout of `path`: true when something is to be removed. Nothing when the layer wrote the
   * path itself, or when nothing is there (a missing parent is not made for it).
   */
  async whiteout(path: readonly string[], name: string): Promise<boolean> {
    if (!(await this.reachable(path, name))) return false
    const parent = this.nodeAt(path.slice(0, -1))!
    const last = path[path.length - 1]
    if (parent.children?.get(last)?.kind) return false
    if ((await this.kindAt(path)) === undefined) return false
    this.setChild(parent, last, { cut: true })
    return true
  }

  /**
   * An opaque marker in dir `path`: the node to make opaque, or nothing when there is nothing of
   * the parent's to hide (no such dir, or one this layer made).
   */
  async opaque(path: readonly string[], name: string): Promise<PlanNode | undefined> {
    if (path.length > 0 && !(await this.reachable(path, name))) return undefined
    if ((await this.kindAt(path)) !== 'dir') return undefined
    const node = this.nodeAt(path)
    if (!node) {
      const made: PlanNode = { opaque: true }
      this.setChild(this.nodeAt(path.slice(0, -1))!, path[path.length - 1], made)
      return made
    }
    if (node.cut) return undefined
    node.opaque = true
    LayerPlan.keepWritten(node)
    return node
  }

  /** Forgets what the plan knew under `node` of the parent's tree: only what the layer wrote stays. */
  private static keepWritten(node: PlanNode): void {
    for (const [name, child] of node.children ?? []) {
      if (!child.kind) node.children!.delete(name)
      else if (child.kind === 'dir') LayerPlan.keepWritten(child)
    }
  }

  /** The kind of a hard link's target, which must exist, not be a dir, and be reached without symlinks. */
  async linkTarget(target: readonly string[], name: string, raw: string): Promise<Kind> {
    const missing = (): Error => fsError('ENOENT', this.syscall, name, `hard link target '${raw}' does not exist`)
    if (target.length === 0 || !(await this.reachable(target, name, missing))) throw missing()
    const kind = await this.kindAt(target)
    if (kind === undefined) throw missing()
    if (kind === 'dir') throw fsError('EPERM', this.syscall, name, `hard link target '${raw}' is a directory`)
    return kind
  }

  /** The written plan node at `path`, if the plan has one. */
  nodeAt(path: readonly string[]): PlanNode | undefined {
    let node: PlanNode | undefined = this.root
    for (const name of path) node = node?.children?.get(name)
    return node
  }

  /** Whether any path under `node` was written by the layer. */
  static holdsWritten(node: PlanNode): boolean {
    for (const child of node.children?.values() ?? []) if (child.kind || LayerPlan.holdsWritten(child)) return true
    return false
  }

  /**
   * The parents of `path` are dirs (false when one is missing); a symlink or a non-dir among
   * them is refused. Makes plan nodes for the parents, so the applier can keep their store nodes.
   */
  private async reachable(path: readonly string[], name: string, missing?: () => Error): Promise<boolean> {
    let node = this.root
    for (let i = 1; i < path.length; i++) {
      const dir = path.slice(0, i)
      const kind = await this.kindAt(dir)
      if (kind === undefined) {
        if (missing) throw missing()
        return false
      }
      if (kind === 'symlink') throw this.throughSymlink(dir, name)
      if (kind === 'other') throw fsError('ENOTDIR', this.syscall, name, `'${storePath(dir)}' is not a directory`)
      let next = node.children?.get(dir[i - 1])
      if (!next) this.setChild(node, dir[i - 1], (next = {}))
      node = next
    }
    return true
  }

  private throughSymlink(dir: readonly string[], name: string): Error {
    const whose = this.nodeAt(dir)?.kind === 'symlink' ? 'made earlier in this layer' : 'of the parent snapshot'
    return fsError('ELOOP', this.syscall, name, `path goes through symlink '${storePath(dir)}' ${whose}; a layer may not write through a link`)
  }

  private setChild(parent: PlanNode, name: string, node: PlanNode): void {
    if (!parent.children) parent.children = new Map()
    parent.children.set(name, node)
  }

  /** The parent's object at `path`, reached dir by dir (never through a symlink). */
  private async lowerAt(path: readonly string[]): Promise<LowerNode | undefined> {
    if (!this.parent) return undefined
    if (path.length === 0) return this.parent.root
    const key = path.join('/')
    const cached = this.lowerCache.get(key)
    if (cached !== undefined) return cached ?? undefined
    const dir = await this.lowerAt(path.slice(0, -1))
    const found = dir && isDirType(dir.type) ? await this.parent.lookup(dir, path[path.length - 1]) : undefined
    this.lowerCache.set(key, found ?? null)
    return found
  }
}
