import { test } from 'node:test'
import { kernelOverlayUnavailable } from './kdiff/mounts.js'
import { fuseUnavailable } from './kdiff/fuse-sides.js'
import { runSeed } from './kdiff/runner.js'
import { MODES, type Mode } from './kdiff/sides.js'
import { shrinkOnFailure } from './kdiff/shrink.js'
import { renameat2Available } from './kdiff/renameat2.js'

/**
 * Differential test against the kernel's overlayfs: random lower layers in the kernel's on-disk
 * format, the same random operations on a kernel mount and on Strata in lockstep, every outcome
 * and the merged trees compared (test/kdiff/). Needs root and overlayfs; skips without them.
 *
 *   STRATA_KDIFF_SEEDS   seeds: numbers and ranges, e.g. "7" or "1-50,90" (default 1-6)
 *   STRATA_KDIFF_OPS     operations per seed and mode (default 300)
 *   STRATA_KDIFF_MODES   dir, store, stack, fuse-dir, fuse-store (Strata against the kernel, see
 *                        kdiff/sides.ts) and self (kernel against kernel, a check of the
 *                        harness); default "dir,store" on every seed, the two FUSE modes on the
 *                        first three seeds, and self once with fewer operations
 *   STRATA_KDIFF_SHRINK  1: on a failure, also look for a shortest operation sequence
 */

function parseSeeds(spec: string): number[] {
  const seeds: number[] = []
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (!m) throw new Error(`STRATA_KDIFF_SEEDS: cannot read '${part}' (numbers and ranges like 1-100)`)
    for (let s = Number(m[1]); s <= Number(m[2] ?? m[1]); s++) seeds.push(s)
  }
  return seeds
}

function parseModes(spec: string): Mode[] {
  const modes = spec.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const m of modes) if (!MODES.includes(m as Mode)) throw new Error(`STRATA_KDIFF_MODES: unknown mode '${m}' (${MODES.join(', ')})`)
  return modes as Mode[]
}

const seeds = parseSeeds(process.env.STRATA_KDIFF_SEEDS ?? '1-6')
const ops = Number(process.env.STRATA_KDIFF_OPS ?? 300)
if (!Number.isInteger(ops) || ops < 0) throw new Error(`STRATA_KDIFF_OPS must be a non-negative integer, not '${process.env.STRATA_KDIFF_OPS}'`)
const explicitModes = process.env.STRATA_KDIFF_MODES
const modes = parseModes(explicitModes ?? 'dir,store')
const shrink = process.env.STRATA_KDIFF_SHRINK === '1'

const unavailable = kernelOverlayUnavailable()
const noFuse = fuseUnavailable()
/** Without STRATA_KDIFF_MODES, how many of the seeds also run through a FUSE mount (each takes ~10 s). */
const FUSE_SEEDS = 3
const isFuse = (mode: Mode): boolean => mode.startsWith('fuse-')

async function run(seed: number, mode: Mode, n: number): Promise<void> {
  // both sides create with the modes asked for; the kernel side would otherwise apply the umask
  const umask = process.umask(0)
  try {
    await shrinkOnFailure(() => runSeed({ seed, ops: n, modes: [mode] }), { seed, mode, enabled: shrink })
  } finally {
    process.umask(umask)
  }
}

const modesFor = (seed: number, i: number): Mode[] =>
  explicitModes !== undefined || i >= FUSE_SEEDS ? modes : [...modes, 'fuse-dir', 'fuse-store']

for (const [i, seed] of seeds.entries()) {
  for (const mode of modesFor(seed, i)) {
    test(`kernel-diff: seed ${seed}, ${mode} mode, ${ops} operations`, async (t) => {
      const reason = (await unavailable) ?? (isFuse(mode) ? await noFuse : undefined)
      if (reason) return t.skip(reason)
      // said on every seed, so a log never hides that part of the operations was left out
      if (!renameat2Available) t.diagnostic('python3 is missing: renames with RENAME_NOREPLACE / RENAME_EXCHANGE are not exercised')
      await run(seed, mode, ops)
    })
  }
}

if (explicitModes === undefined) {
  test('kernel-diff harness: kernel against kernel shows no difference', async (t) => {
    const reason = await unavailable
    if (reason) return t.skip(reason)
    await run(seeds[0] ?? 1, 'self', Math.min(ops, 150))
  })
}
