import { chmod, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { Rng } from '../model/prng.js'
import type { FsUnderTest } from './fsut.js'
import { OpGen } from './gen-ops.js'
import { applyOp, describeOp, isReadOp, sameOutcome, showOutcome, touchedPaths, type Op, type Outcome } from './ops.js'
import { Mounts, makeSides, refLabel, type Mode, type Sides } from './sides.js'
import { ALLOWED } from './allowlist.js'
import { HeldFiles } from './held.js'
import { peek } from './look.js'
import { diffTrees, readTree } from '../treecompare.js'
import { withLowers, type Lowers } from './lowers.js'

/**
 * One seed: random lower layers, then for each mode a kernel mount and the side under test
 * driven in lockstep, every outcome compared, the whole tree now and then and at the end,
 * and finally the kernel's view of what the side left on disk.
 */

export interface SeedOptions {
  seed: number
  ops: number
  modes: Mode[]
  /** Compare the whole trees every this many operations. */
  fullEvery?: number
  /** Recorded operations to replay instead of generating them (for shrinking). */
  replay?: Op[]
}

/** Where a difference showed: an op's outcome, the look right after an op, a whole-tree check, the end. */
export type MismatchKind = 'outcome' | 'after-op' | 'trees' | 'end' | 'threw'

/** A difference, with everything needed to reproduce it. */
export class Mismatch extends Error {
  constructor(message: string, readonly kind: MismatchKind, readonly mode: Mode, readonly opIndex: number, readonly ops: Op[]) {
    super(message)
  }
}

const TAIL = 25
/** Files up to this size are hashed in the check right after an op; the periodic check hashes all. */
const QUICK_HASH_LIMIT = 1 << 20

export const rerunCommand = (seed: number, mode: Mode, ops: number): string =>
  `npx tsc -p . && STRATA_KDIFF_SEEDS=${seed} STRATA_KDIFF_MODES=${mode} STRATA_KDIFF_OPS=${ops} node --test --test-concurrency=1 dist/test/kernel-diff.test.js`

export async function runSeed(opts: SeedOptions): Promise<void> {
  await withLowers(opts.seed, async (lowers, base) => {
    for (const mode of opts.modes) await runMode(opts, mode, lowers, await mkdtemp(join(base, `${mode}-`)))
  })
}

export async function runMode(opts: SeedOptions, mode: Mode, lowers: Lowers, base: string): Promise<void> {
  // searchable by every caller the operations run as
  await chmod(base, 0o755)
  const mounts = new Mounts(base)
  let failed = false
  try {
    const sides = await makeSides(mode, mounts, lowers.dirs)
    try {
      await new Run(opts, mode, sides, lowers).run()
    } finally {
      await sides.sut.close().catch(() => {})
    }
  } catch (err) {
    failed = true
    throw err
  } finally {
    // a failure to unmount is reported unless it would hide the run's own failure
    await mounts.unmountAll().catch((err: unknown) => {
      if (!failed) throw err
    })
  }
}

class Run {
  private readonly held = { ref: new HeldFiles(), sut: new HeldFiles() }
  private readonly done: Op[] = []
  private readonly log: string[] = []
  private opIndex = -1

  constructor(private readonly opts: SeedOptions, private readonly mode: Mode, private readonly sides: Sides, private readonly lowers: Lowers) {}

  async run(): Promise<void> {
    try {
      await this.steps()
    } finally {
      // an open file would keep its mount busy
      await this.held.ref.closeAll()
      await this.held.sut.closeAll()
    }
  }

  private async steps(): Promise<void> {
    const { ref, sut } = this.sides
    const gen = new OpGen(new Rng(this.opts.seed ^ 0x6b646966), ref)
    const count = this.opts.replay?.length ?? this.opts.ops
    await this.compareTrees(ref, sut, 'before the first operation', 'trees')
    for (this.opIndex = 0; this.opIndex < count; this.opIndex++) {
      const op = this.opts.replay?.[this.opIndex] ?? (await gen.next())
      this.done.push(op)
      const a = await this.guard(() => applyOp(ref, op, this.held.ref), ref)
      const b = await this.guard(() => applyOp(sut, op, this.held.sut), sut)
      const allowed = sameOutcome(a, b) ? undefined : ALLOWED.find((x) => x.matches({ mode: this.mode, op, kernel: a, strata: b }))
      this.log.push(`#${this.opIndex} ${describeOp(op)}: ${showOutcome(a)}${sameOutcome(a, b) ? '' : ` / ${showOutcome(b)}`}${allowed ? ` (allowed: ${allowed.why})` : ''}`)
      if (!sameOutcome(a, b) && !allowed) this.failOutcome(op, a, b)
      if (!isReadOp(op)) await this.quickCheck(op)
      if ((this.opIndex + 1) % (this.opts.fullEvery ?? 100) === 0) await this.compareTrees(ref, sut, `after op #${this.opIndex}`, 'trees')
    }
    this.opIndex = count - 1
    await this.held.ref.closeAll()
    await this.held.sut.closeAll()
    await this.compareTrees(ref, sut, 'after the last operation', 'trees')
    for await (const after of this.sides.afterwards()) {
      try {
        await this.compareTrees(ref, after, 'at the end', 'end')
      } finally {
        await after.close()
      }
    }
  }

  /** The paths an op touched and their dirs, described on both sides right after it. */
  private async quickCheck(op: Op): Promise<void> {
    for (const path of touchedPaths(op)) {
      const [a, b] = [await peek(this.sides.ref, path, QUICK_HASH_LIMIT), await peek(this.sides.sut, path, QUICK_HASH_LIMIT)]
      if (a !== b) this.fail(`after the op, ${path} differs:\n    ${this.sides.ref.name}: ${a}\n    ${this.sides.sut.name}: ${b}`, 'after-op')
    }
  }

  private async compareTrees(ref: FsUnderTest, other: FsUnderTest, when: string, kind: MismatchKind): Promise<void> {
    const [a, b] = [await this.guard(() => readTree(ref.treeSource), ref), await this.guard(() => readTree(other.treeSource), other)]
    const diffs = diffTrees(a, b)
    if (diffs.length === 0) return
    const shown = diffs.slice(0, 30).map((d) => `    ${d}`).join('\n')
    this.fail(`the trees differ ${when}; expected is ${ref.name}, got is ${other.name}:\n${shown}${diffs.length > 30 ? `\n    ... ${diffs.length - 30} more` : ''}`, kind)
  }

  private failOutcome(op: Op, a: Outcome, b: Outcome): never {
    this.fail(`different outcomes of\n    ${describeOp(op)}\n    ${this.sides.ref.name}: ${showOutcome(a)}\n    ${this.sides.sut.name}: ${showOutcome(b)}`, 'outcome')
  }

  /** Exceptions without an errno code are failures too, with the same reproducer. */
  private async guard<T>(fn: () => Promise<T>, side: FsUnderTest): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof Mismatch) throw err
      return this.fail(`${side.name} threw: ${(err as Error).stack ?? String(err)}`, 'threw')
    }
  }

  private fail(problem: string, kind: MismatchKind): never {
    const at = this.opIndex < 0 ? 'before any operation' : `op #${this.opIndex}`
    const tail = this.log.slice(-TAIL)
    const omitted = this.log.length - tail.length
    const msg =
      `kernel-diff seed ${this.opts.seed}, mode ${this.mode} (${this.sides.sut.name} vs ${refLabel(this.mode)}), ${at}: ${problem}\n` +
      `  rerun just this: ${rerunCommand(this.opts.seed, this.mode, Math.max(1, this.opIndex + 1))}\n` +
      `  (add STRATA_KDIFF_SHRINK=1 for a minimal operation sequence)\n` +
      `  operations${omitted > 0 ? ` (the first ${omitted} left out)` : ''}, outcome kernel / other when they differ:\n    ${tail.join('\n    ')}\n` +
      `  lower layers:\n${this.lowers.describe}`
    throw new Mismatch(msg, kind, this.mode, this.opIndex, [...this.done])
  }
}
