import { test } from 'node:test'
import { runSeed } from './model/harness.js'

/**
 * Model-based test: random operation sequences on an active snapshot, stacked into layers by
 * commits, checked step by step against a plain in-memory filesystem.
 *
 *   STRATA_MODEL_SEEDS  seeds to run: a list of numbers and ranges, e.g. "7" or "1-500,900" (default 1-6)
 *   STRATA_MODEL_OPS    operations per seed (default 400)
 */

function parseSeeds(spec: string): number[] {
  const seeds: number[] = []
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (!m) throw new Error(`STRATA_MODEL_SEEDS: cannot read '${part}' (numbers and ranges like 1-100)`)
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    for (let s = lo; s <= hi; s++) seeds.push(s)
  }
  return seeds
}

const seeds = parseSeeds(process.env.STRATA_MODEL_SEEDS ?? '1-6')
const ops = Number(process.env.STRATA_MODEL_OPS ?? 400)
if (!Number.isInteger(ops) || ops < 1) throw new Error(`STRATA_MODEL_OPS must be a positive integer, not '${process.env.STRATA_MODEL_OPS}'`)

for (const seed of seeds) {
  test(`model: seed ${seed}, ${ops} operations`, async () => {
    await runSeed({ seed, ops })
  })
}
