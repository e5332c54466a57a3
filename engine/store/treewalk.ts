import type { Store } from '../store.js'
import type { IndexLowerNode, IndexTree } from './mergeindex.js'
import type { InodeRecord, SnapshotRecord } from './records.js'
import type { Overlay } from '../overlay/overlay.js'
import { T, joinPath, type OvlNode } from '../overlay/node.js'
import { readMergedDir } from '../overlay/readdir.js'

/** A path of a snapshot's tree and what is wrong with it. */
export interface PathProblem {
  path: string
  problem: string
}

/** What is wrong with a regular file's data, or undefined when nothing is. */
export type FileCheck = (rec: InodeRecord) => Promise<string | undefined>

const messageOf = (err: unknown): string => (err as Error).message

/**
 * Walks snapshots' trees with one file check, for the reports that name snapshots and paths (fsck's
 * damage, a repair's losses). Every entry's record is read, every regular file checked; a record,
 * listing or file that cannot be read is a problem worded by `cannotRead`, never the end of the
 * walk, and a directory whose record is lost still has its names walked. Committed trees are walked
 * through their merged index: a directory node shared by several snapshots is checked once and its
 * problems reported under each snapshot's path to it, which holds for one check only, hence one
 * walker per check. Active snapshots and views are walked through their overlay.
 */
export class TreeWalker {
  private readonly byNode = new Map<string, PathProblem[]>()

  constructor(
    private readonly store: Store,
    private readonly check: FileCheck,
    private readonly cannotRead: (message: string) => string = (message) => message,
  ) {}

  /** The problems of a snapshot's tree; throws only when the tree cannot be opened at all. */
  async problems(name: string, r: SnapshotRecord): Promise<PathProblem[]> {
    if (r.kind !== 'committed') return this.overlayProblems(await this.store.overlayFor(name, {}))
    if (!r.index || !r.layer) return [{ path: '/', problem: this.cannotRead('committed without an index: the whole tree is lost') }]
    // inodes named through `links` differ per snapshot: such a tree is not shared node by node
    const shareable = r.links === undefined || Object.keys(r.links).length === 0
    const tree = (await this.store.tree(name)) as IndexTree
    return (await this.indexProblems(tree, tree.root, shareable)).map((p) => ({ path: p.path || '/', problem: p.problem }))
  }

  /** Problems under a directory of a committed tree, with paths relative to it ('' is the directory itself). */
  private async indexProblems(tree: IndexTree, node: IndexLowerNode, shareable: boolean): Promise<PathProblem[]> {
    const id = shareable ? node.node : undefined
    const hit = id === undefined ? undefined : this.byNode.get(id)
    if (hit) return hit
    const found: PathProblem[] = []
    try {
      for (const [child, n] of await tree.list(node)) {
        const rel = `/${child}`
        const problem = await this.entryProblem(() => tree.inode(n), n.type)
        if (problem) found.push({ path: rel, problem })
        if (n.type === T.DIR) for (const p of await this.indexProblems(tree, n, shareable)) found.push({ path: rel + p.path, problem: p.problem })
      }
    } catch (err) {
      found.push({ path: '', problem: this.unlisted(err) })
    }
    if (id !== undefined) this.byNode.set(id, found)
    return found
  }

  /** Problems of an active snapshot's or a view's tree, as its overlay shows it. */
  private async overlayProblems(ov: Overlay): Promise<PathProblem[]> {
    const found: PathProblem[] = []
    const visit = async (dir: OvlNode): Promise<void> => {
      let entries
      try {
        entries = await readMergedDir(ov, dir)
      } catch (err) {
        found.push({ path: dir.path, problem: this.unlisted(err) })
        return
      }
      for (const e of entries) {
        const path = joinPath(dir.path, e.name)
        let node: OvlNode | undefined
        try {
          node = await ov.lookup(dir, e.name)
        } catch (err) {
          found.push({ path, problem: this.cannotRead(messageOf(err)) })
        }
        if (!node) continue
        const problem = await this.entryProblem(() => ov.inodeOf(node), node.type)
        if (problem) found.push({ path, problem })
        if (node.type === T.DIR) await visit(node)
      }
    }
    await visit(ov.root())
    return found
  }

  /** What is wrong with one entry: its record cannot be read, or (a regular file) the check's finding. */
  private async entryProblem(record: () => Promise<InodeRecord>, type: number): Promise<string | undefined> {
    try {
      const rec = await record()
      return type === T.REG ? await this.check(rec) : undefined
    } catch (err) {
      return this.cannotRead(messageOf(err))
    }
  }

  private unlisted(err: unknown): string {
    return this.cannotRead(`directory listing lost: ${messageOf(err)}`)
  }
}
