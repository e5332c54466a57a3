import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store, type SnapshotFs } from '../../engine/index.js'
import { InoMap, captureStore, diffOutcome, diffTrees } from './compare.js'
import { OpGen } from './gen.js'
import { applyModel, describeOp, isReadOnlyOp, runStore, touchedPaths, type Op } from './ops.js'
import { Rng } from './prng.js'
import { runSession } from './session.js'
import { CALLERS } from './perm.js'
import { FsModel } from './tree.js'
import { captureModel } from './describe.js'

/**
 * One seeded run: random operations on an active snapshot and on the model side by side, with
 * commits that stack layers, store reopens and gc in between. Throws on the first difference,
 * with the seed and the operations so far.
 */

export interface RunOptions {
  seed: number
  ops: number
  /** Compare the whole tree every this many operations. */
  fullEvery?: number
}

export class ModelMismatch extends Error {}

const TAIL = 60

export async function runSeed(opts: RunOptions): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `strata-model-${opts.seed}-`))
  try {
    await new Run(opts, join(dir, 'store')).run()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

class Run {
  private readonly rng: Rng
  private readonly gen: OpGen
  private model = new FsModel()
  private readonly inos = new InoMap()
  private readonly log: string[] = []
  private readonly commits: Array<{ name: string; model: FsModel }> = []
  private store!: Store
  /** The active snapshot's fs for each of CALLERS. */
  private fsAs: SnapshotFs[] = []
  private active = 'active-0'
  private opIndex = 0

  constructor(private readonly opts: RunOptions, private readonly path: string) {
    this.rng = new Rng(opts.seed)
    this.gen = new OpGen(this.rng)
  }

  async run(): Promise<void> {
    this.store = await Store.open({ path: this.path })
    try {
      await this.store.prepare(this.active)
      this.openFs()
      const fullEvery = this.opts.fullEvery ?? 40
      for (this.opIndex = 0; this.opIndex < this.opts.ops; this.opIndex++) {
        await this.step()
        if ((this.opIndex + 1) % fullEvery === 0) await this.checkAll(false)
      }
      this.log.push('-- end of run')
      await this.checkAll(true)
      const report = await this.store.fsck({ verifyData: true })
      if (!report.ok) this.fail(`fsck: ${report.problems.join('; ')}`)
    } finally {
      await this.store.close()
    }
  }

  private async step(): Promise<void> {
    const layerOp = this.rng.weighted([['none', 200], ['commit', 7], ['reopen', 2], ['gc', 1], ['session', 8]] as const)
    if (layerOp === 'commit') return this.guard(() => this.commit())
    if (layerOp === 'reopen') return this.guard(() => this.reopen())
    if (layerOp === 'gc') {
      this.log.push(`#${this.opIndex} gc`)
      await this.guard(() => this.store.gc())
      return
    }
    if (layerOp === 'session') {
      this.log.push(`#${this.opIndex} session`)
      const problem = await this.guard(() => runSession({ gen: this.gen, model: this.model, fsAs: this.fsAs, inos: this.inos, log: (l) => this.log.push(l) }))
      if (problem) this.fail(problem)
      return
    }
    const op = this.gen.next(this.model, this.countNames())
    this.log.push(`#${this.opIndex} ${describeOp(op)}`)
    const exp = applyModel(this.model, op)
    const act = await this.guard(() => runStore(this.fsAs[op.as], op, this.fsAs[0]))
    const diff = diffOutcome(exp, act, this.inos)
    if (diff.length > 0) this.fail(diff.join('; '))
    if (!isReadOnlyOp(op)) await this.checkPaths(op)
  }

  /** After a change, the names it touched and their parents must look the same on both sides. */
  private async checkPaths(op: Op): Promise<void> {
    for (const path of touchedPaths(op)) {
      const stat: Op = { k: 'stat', path, follow: false, as: 0 }
      const diff = diffOutcome(applyModel(this.model, stat), await this.guard(() => runStore(this.fsAs[0], stat, this.fsAs[0])), this.inos)
      if (diff.length > 0) this.fail(`after the op, lstat ${path}: ${diff.join('; ')}`)
    }
  }

  /**
   * Commits the active snapshot and prepares the next one on it, or now and then on an earlier
   * commit (a branch: the model goes back to that commit's state).
   */
  private async commit(): Promise<void> {
    const name = `commit-${this.commits.length}`
    const next = `active-${this.commits.length + 1}`
    await this.store.commit(name, this.active)
    this.commits.push({ name, model: this.model.clone() })
    const base = this.rng.chance(0.15) ? this.rng.pick(this.commits) : this.commits[this.commits.length - 1]
    this.log.push(`#${this.opIndex} commit ${this.active} as ${name}; prepare ${next} on ${base.name}`)
    await this.store.prepare(next, base.name)
    if (base.name !== name) this.model = this.model.branchOf(base.model)
    this.active = next
    this.openFs()
  }

  private async reopen(): Promise<void> {
    this.log.push(`#${this.opIndex} close and reopen the store`)
    await this.store.close()
    this.store = await Store.open({ path: this.path })
    this.openFs()
  }

  private openFs(): void {
    this.fsAs = CALLERS.map((creds) => this.store.fs(this.active, { creds }))
  }

  /** The whole active tree against the model, and committed trees against the model as it was then. */
  private async checkAll(everyCommit: boolean): Promise<void> {
    await this.compareTree(this.fsAs[0], this.model, `active snapshot '${this.active}'`)
    const commits = everyCommit ? this.commits : this.commits.slice(-1)
    for (const c of commits) await this.compareTree(this.store.fs(c.name), c.model, `committed snapshot '${c.name}'`)
  }

  private async compareTree(fs: SnapshotFs, model: FsModel, what: string): Promise<void> {
    const { tree, problems } = await this.guard(() => captureStore(fs))
    problems.push(...diffTrees(captureModel(model), tree, this.inos))
    if (problems.length > 0) this.fail(`${what} differs from the model:\n  ${problems.slice(0, 20).join('\n  ')}`)
  }

  /** The model's names, types and symlink targets, to read a failure by. */
  private modelListing(): string {
    const lines: string[] = []
    for (const [path, d] of captureModel(this.model)) {
      if (lines.length === 100) { lines.push('  ...'); break }
      lines.push(`  ${path} ${d.type}${d.target !== undefined ? ` -> ${d.target}` : ''} #${d.ino}${d.size !== undefined ? ` ${d.size}B` : ''}`)
    }
    return lines.join('\n')
  }

  /** How big the tree is for the generator's grow/shrink balance; a bulk-filled dir counts as a few names. */
  private countNames(): number {
    let n = 0
    const walk = (node: FsModel['root']): void => {
      n += Math.min(node.entries.size, 30)
      for (const child of node.entries.values()) if (child.kind === 'dir') walk(child)
    }
    walk(this.model.root)
    return n
  }

  /** Unexpected exceptions (not errno answers) fail the run with its reproducer too. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof ModelMismatch) throw err
      return this.fail(`unexpected exception: ${(err as Error).stack ?? String(err)}`)
    }
  }

  private fail(problem: string): never {
    const tail = this.log.slice(-TAIL)
    const skipped = this.log.length - tail.length
    throw new ModelMismatch(
      `seed ${this.opts.seed}, op #${this.opIndex}: ${problem}\n` +
        `reproduce: npx tsc -p . && STRATA_MODEL_SEEDS=${this.opts.seed} STRATA_MODEL_OPS=${this.opIndex + 1} node --test dist/test/model.test.js\n` +
        `operations${skipped > 0 ? ` (the first ${skipped} lines left out)` : ''}:\n${tail.join('\n')}\n` +
        `model tree now:\n${this.modelListing()}`,
    )
  }
}
