import { LRUCache } from 'lru-cache'
import type { InodeRecord } from '../store/records.js'
import type { LowerNode, LowerTree, OvlNode, ProbeAnswer, UpperLayer } from './node.js'
import { lookupChild, nodeInode, rootNode, type NameiContext } from './namei.js'
import { isDirType } from './node.js'
import { mergeDir } from './readdir.js'
import { isWhiteoutEntry } from './whiteout.js'
import type { RedirectConfig } from './redirect.js'

/** A stack node: the merged node of this level, and the store layer holding it when there is one. */
type StackNode = OvlNode & LowerNode

/**
 * A read-only merged tree made of raw layers, merged one level at a time with the very rules of
 * the upper layer (namei.ts, readdir.ts): layer i acts as the upper layer over the tree of the
 * layers below it. This is how the kernel reads a stack of lower dirs, and how directory layers
 * and store layers mix. A lookup costs one probe per layer, as in the kernel.
 */
export class StackedTree implements LowerTree {
  private readonly ctx: NameiContext
  readonly root: StackNode

  /** `layer` over `below`; `storeLayer` says whether the layer's ids name store layers. */
  constructor(readonly layer: UpperLayer, below: LowerTree, redirect: RedirectConfig, private readonly storeLayer = false) {
    this.ctx = { upper: layer, lower: below, redirect }
    this.root = this.withLayer(rootNode(this.ctx))
  }

  private withLayer(node: OvlNode): StackNode {
    const n = node as StackNode
    n.layer = node.upper ? (this.storeLayer ? this.layer.id : undefined) : node.lower?.layer
    return n
  }

  /** The top tree of a stack only (see `asTop`): what its lookups found. */
  private memo?: LookupMemo

  /**
   * Makes this the tree the overlay asks (stackLayers): its lookups are kept, and each one that
   * is not probes the layers ahead. The trees below answer the walk that follows a miss.
   */
  asTop(): this {
    this.memo = new LookupMemo()
    return this
  }

  async lookup(dir: LowerNode, name: string): Promise<StackNode | undefined> {
    const memo = this.memo
    if (!memo) return this.lookupThrough(dir as StackNode, name)
    const key = memo.key(dir, name)
    const kept = memo.get(key)
    if (kept) return kept.node
    this.probeLayers(dir as StackNode, name)
    const node = await this.lookupThrough(dir as StackNode, name)
    memo.set(key, node)
    return node
  }

  /** One lookup through every layer, with the overlay's rules. */
  private async lookupThrough(dir: StackNode, name: string): Promise<StackNode | undefined> {
    const found = (await lookupChild(this.ctx, dir, name)).node
    return found ? this.withLayer(found) : undefined
  }

  /**
   * Looks `name` up ahead in the layers that hold the dir, top first: the dir node of each level
   * leads to that of the level below (`lower`) while the dir goes on (not opaque, redirects
   * followed), so these are the layers the walk of lookupChild may reach. From the host's caches
   * a probe costs microseconds, and they are made at once, stopping where the walk will stop (a
   * whiteout, a non-dir). Once one waited on the disk, the layers below will too, each for its own
   * blocks: the rest are started together in libuv's pool, so their waits overlap instead of
   * adding up. Those may reach layers below where the walk stops, which then keep an answer
   * nothing asked for.
   */
  private probeLayers(dir: StackNode, name: string): void {
    let tree: LowerTree = this
    let node: LowerNode | undefined = dir
    let inPool = false
    while (node && tree instanceof StackedTree) {
      const n = node as StackNode
      const answer: ProbeAnswer | undefined = n.upper ? tree.layer.probe?.(n.ino, name, inPool) : undefined
      if (answer?.entry && (isWhiteoutEntry(answer.entry) || !isDirType(answer.entry[1]))) return
      inPool ||= answer?.waited === true
      node = n.lower
      tree = tree.ctx.lower
    }
  }

  async list(dir: LowerNode): Promise<Array<[string, StackNode]>> {
    const out: Array<[string, StackNode]> = []
    const parent = dir as StackNode
    for (const e of await mergeDir(this.ctx, parent)) {
      // A name whose lookup fails (a redirect the policy refuses) is still listed, as the kernel's
      // readdir lists it; only its number and type are known then.
      const node = await this.lookup(dir, e.name).catch(() => undefined)
      out.push([e.name, node ?? { name: e.name, path: joinName(parent, e.name), parent, ino: e.ino, type: e.type, upper: false, opaque: false }])
    }
    return out
  }

  inode(node: LowerNode): Promise<InodeRecord> {
    return nodeInode(this.ctx, node as StackNode)
  }
}

/** How many nodes the memo of a stack's lookups may hold, each found node counted with its lower nodes. */
const MEMO_NODES = 256 * 1024

/**
 * What the lookups of a stack found, by dir node and name. The layers of a stack do not change
 * while it is open (the kernel's rule for lower dirs), so neither does the answer. Without it
 * every path walk would go through every layer again for each component it passes, and FUSE
 * walks from the root at each LOOKUP: the nth component of a path would be merged n times.
 * Found nodes are the ones the walk returned, so the next component's lookup finds its dir here
 * too. Dir nodes are told apart by a number given to each object met.
 */
class LookupMemo {
  private readonly ids = new WeakMap<LowerNode, number>()
  private next = 0
  private readonly found = new LRUCache<string, { node?: StackNode }>({ maxSize: MEMO_NODES, sizeCalculation: (v) => chainLength(v.node) })

  key(dir: LowerNode, name: string): string {
    let id = this.ids.get(dir)
    if (id === undefined) this.ids.set(dir, (id = this.next++))
    return `${id}\0${name}`
  }

  get(key: string): { node?: StackNode } | undefined {
    return this.found.get(key)
  }

  set(key: string, node: StackNode | undefined): void {
    this.found.set(key, { node })
  }
}

/** The node and the lower nodes it holds (one per layer the object goes through), at least 1. */
function chainLength(node: LowerNode | undefined): number {
  let n = 1
  for (let cur = (node as StackNode | undefined)?.lower; cur; cur = (cur as StackNode).lower) n++
  return n
}

const joinName = (dir: OvlNode, name: string): string => (dir.path === '/' ? `/${name}` : `${dir.path}/${name}`)

/** Raw layers, top first, over `bottom` (an empty tree, or a committed snapshot's index). */
export function stackLayers(layers: UpperLayer[], bottom: LowerTree, redirect: RedirectConfig, isStoreLayer: (l: UpperLayer) => boolean): LowerTree {
  let tree = bottom
  for (let i = layers.length - 1; i >= 0; i--) tree = new StackedTree(layers[i], tree, redirect, isStoreLayer(layers[i]))
  return tree instanceof StackedTree ? tree.asTop() : tree
}
