import { isDirType, type OvlNode } from './node.js'

/** Cached directories kept at most; past it the cache starts again empty. */
const MAX_NODES = 65536

/**
 * How the names of one snapshot change, shared by every overlay open on it: a change that can
 * make a cached directory node wrong (rename or removal of a dir, a dir copied up, a bulk
 * import writing behind the overlay's back) moves `generation`, and every overlay's cache of
 * the snapshot starts again.
 */
export class NameChanges {
  generation = 0
  /** Set while something writes the layer without going through an overlay (an import): nothing is cached. */
  bypassed = false

  changed(): void {
    this.generation++
  }
}

/**
 * The directories a path walk has found, by merged path: a request names a file by its path
 * from the root, and walking it again from the root for every request read the same entries
 * and dir records each time. Only directories are kept: their node changes only through the
 * events NameChanges counts, and a node kept here is the one every walk shares, so a copy-up
 * that sets `upper` on it is seen by all.
 *
 * Only for layers no one else writes (a store's): a directory layer can change on the host
 * under the mount, which no generation would see.
 */
export class DentryCache {
  private readonly nodes = new Map<string, OvlNode>()
  private seen: number

  constructor(private readonly changes: NameChanges) {
    this.seen = changes.generation
  }

  /** The current generation, to hand back to `add` once a walk has found a node. */
  get generation(): number {
    return this.changes.generation
  }

  /** The dir node cached for `path`, if it is still true. */
  get(path: string): OvlNode | undefined {
    if (this.changes.generation !== this.seen) this.restart()
    return this.nodes.get(path)
  }

  /**
   * Keeps a dir node a walk found when the generation was `generation`; answers the node to use
   * from now on: one kept meanwhile by another walk wins, so that every walk shares one node.
   * A node found before a change is not kept (it may be what the change made wrong).
   */
  add(node: OvlNode, generation: number): OvlNode {
    if (!isDirType(node.type) || this.changes.bypassed || generation !== this.changes.generation) return node
    if (this.seen !== generation) this.restart()
    const kept = this.nodes.get(node.path)
    if (kept) return kept
    if (this.nodes.size >= MAX_NODES) this.nodes.clear()
    this.nodes.set(node.path, node)
    return node
  }

  /** A change to names through this overlay that can make a cached node wrong. */
  changed(): void {
    this.changes.changed()
  }

  /** Nothing is cached any more, by any overlay of the snapshot. */
  bypass(): void {
    this.changes.bypassed = true
    this.changes.changed()
  }

  private restart(): void {
    this.nodes.clear()
    this.seen = this.changes.generation
  }
}
