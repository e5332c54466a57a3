import type { InodeRecord } from '../store/records.js'
import type { LowerNode, LowerTree, OvlNode, UpperLayer } from './node.js'
import { lookupChild, nodeInode, rootNode, type NameiContext } from './namei.js'
import { mergeDir } from './readdir.js'
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

  async lookup(dir: LowerNode, name: string): Promise<StackNode | undefined> {
    const found = (await lookupChild(this.ctx, dir as StackNode, name)).node
    return found ? this.withLayer(found) : undefined
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

const joinName = (dir: OvlNode, name: string): string => (dir.path === '/' ? `/${name}` : `${dir.path}/${name}`)

/** Raw layers, top first, over `bottom` (an empty tree, or a committed snapshot's index). */
export function stackLayers(layers: UpperLayer[], bottom: LowerTree, redirect: RedirectConfig, isStoreLayer: (l: UpperLayer) => boolean): LowerTree {
  let tree = bottom
  for (let i = layers.length - 1; i >= 0; i--) tree = new StackedTree(layers[i], tree, redirect, isStoreLayer(layers[i]))
  return tree
}
