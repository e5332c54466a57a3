import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Rng } from '../model/prng.js'
import { writeLayers } from './disk.js'
import { generateLayers } from './gen-layers.js'
import { kernelMadeLayer } from './kernel-layer.js'
import { describeLayers } from './stack.js'

/**
 * The lower dirs of a seed, the same for every mode and every replay: the generated layers, and
 * for half the seeds one more on top written by the kernel itself (kernel-layer.ts).
 */

export interface Lowers {
  /** Top first. */
  dirs: string[]
  /** What each layer holds, for a failure report. */
  describe: string
}

const KERNEL_LAYER_OPS = 80

export async function withLowers<T>(seed: number, fn: (lowers: Lowers, base: string) => Promise<T>): Promise<T> {
  const base = await mkdtemp(join(tmpdir(), `strata-kdiff-${seed}-`))
  try {
    // searchable by every caller the operations run as
    await chmod(base, 0o755)
    const layers = generateLayers(new Rng(seed))
    let dirs = await writeLayers(join(base, 'lowers'), layers)
    let describe = describeLayers(layers)
    if (new Rng(seed ^ 0x6c6f7772).chance(0.5)) {
      const k = await kernelMadeLayer(seed, dirs, base, KERNEL_LAYER_OPS)
      dirs = [k.dir, ...dirs]
      describe = `  lower 0 (top): the upper dir of a kernel mount over the layers below after\n    ${k.log.join('\n    ')}\n${describeLayers(layers, 1)}`
    }
    return await fn({ dirs, describe }, base)
  } finally {
    await rm(base, { recursive: true, force: true })
  }
}
