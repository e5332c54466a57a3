import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describeOp, type Op } from './ops.js'
import { withLowers } from './lowers.js'
import { Mismatch, runMode } from './runner.js'
import type { Mode } from './sides.js'

/**
 * On a difference, looks for a shorter operation sequence that still shows it (same kind, at
 * its last operation), replaying recorded operations on the same lower layers: chunks of the
 * sequence are dropped, halving the chunk size down to single operations.
 */

export interface ShrinkOptions {
  seed: number
  mode: Mode
  enabled: boolean
}

export async function shrinkOnFailure(run: () => Promise<void>, o: ShrinkOptions): Promise<void> {
  try {
    await run()
  } catch (err) {
    if (!o.enabled || !(err instanceof Mismatch)) throw err
    const ops = await shrink(o.seed, err)
    err.message += `\n  shortest sequence found (${ops.length} of ${err.ops.length} operations) on the same lower layers:\n    ${ops.map(describeOp).join('\n    ') || '(none)'}`
    throw err
  }
}

async function shrink(seed: number, first: Mismatch): Promise<Op[]> {
  return withLowers(seed, async (lowers, base) => {
    const reproduces = async (ops: Op[]): Promise<boolean> => {
      const dir = await mkdtemp(join(base, 'shrink-'))
      try {
        await runMode({ seed, ops: ops.length, modes: [first.mode], replay: ops, fullEvery: Infinity }, first.mode, lowers, dir)
        return false
      } catch (err) {
        return err instanceof Mismatch && err.kind === first.kind && err.opIndex === ops.length - 1
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    }
    // an outcome or the look right after an op belongs to the last op: it stays
    const keepLast = first.kind === 'outcome' || first.kind === 'after-op' || first.kind === 'threw'
    let ops = first.ops
    for (let chunk = Math.max(1, Math.floor(ops.length / 2)); chunk >= 1; chunk = Math.floor(chunk / 2)) {
      for (let start = 0; start < ops.length - (keepLast ? 1 : 0);) {
        const end = Math.min(start + chunk, ops.length - (keepLast ? 1 : 0))
        const candidate = [...ops.slice(0, start), ...ops.slice(end)]
        if (await reproduces(candidate)) ops = candidate
        else start = end
      }
    }
    return ops
  })
}
