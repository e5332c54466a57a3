/** Lower layers in the kernel's overlay format for the stack workloads, and their import into a store. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Prng } from '../lib/random.js'

/** The file the depth workload stats: only the bottom layer holds it. */
export const DEPTH_TARGET = 'deep/a/b/c/target'
export const DEPTH_TARGET_BYTES = 64

/**
 * `count` layer dirs `root/0` (bottom) … `root/<count-1>`, bottom first. The bottom one holds
 * DEPTH_TARGET; every one holds `deep/a/b/c/other-<i>`, so each directory on the target's path
 * exists in every layer and a lookup has to merge it through all of them (as the kernel does for
 * a directory that is not opaque). Short names keep a 200-layer `lowerdir=` option short.
 */
export async function depthLayers(root: string, count: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const layer = join(root, String(i))
    await mkdir(join(layer, 'deep/a/b/c'), { recursive: true })
    await writeFile(join(layer, `deep/a/b/c/other-${i}`), `layer ${i}\n`)
    if (i === 0) await writeFile(join(layer, DEPTH_TARGET), Buffer.alloc(DEPTH_TARGET_BYTES, 't'))
    out.push(layer)
  }
  return out
}

/** The top `depth` layers of a bottom-first list as `lowerdir=` wants them: top first, the bottom one last. */
export const lowersOf = (bottomFirst: string[], depth: number): string[] => bottomFirst.slice(0, depth).reverse()

/**
 * Content of file `i` of a generated tree: pseudo-random (neither dedups nor compresses, so a
 * store's growth compares with an upper dir's) and checkable from the file's number alone.
 */
export const fileContent = (seed: number, i: number, bytes: number): Buffer => new Prng(seed * 1_000_003 + i).bytes(bytes)
