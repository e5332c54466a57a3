import { chmod, chown, rm } from 'node:fs/promises'
import { listAttributes, removeAttribute } from 'fs-xattr'
import { Rng } from '../model/prng.js'
import { OpGen } from './gen-ops.js'
import { HeldFiles } from './held.js'
import { applyOp, describeOp, showOutcome } from './ops.js'
import { Mounts } from './sides.js'

/**
 * A lower layer as the kernel itself writes one: a fresh upper dir over the generated layers,
 * changed by random operations through a kernel mount (redirect_dir=on, index=off), then
 * unmounted. It brings what the generator does not write by hand: redirects of renamed dirs,
 * opaque dirs made by mkdir over a whiteout, origin and impure xattrs, copied-up files.
 */
export async function kernelMadeLayer(seed: number, lowers: string[], base: string, ops: number): Promise<{ dir: string; log: string[] }> {
  const mounts = new Mounts(base)
  const dir = await mounts.dir('kernel-layer')
  const work = await mounts.dir('kernel-layer-work')
  const log: string[] = []
  const held = new HeldFiles()
  try {
    const fs = await mounts.mountWith('kernel session', await mounts.dir('kernel-layer-mnt'), { lowerdir: lowers, upperdir: dir, workdir: work, options: ['redirect_dir=on', 'index=off'] })
    const gen = new OpGen(new Rng(seed ^ 0x6b6c6179), fs)
    try {
      for (let i = 0; i < ops; i++) {
        const op = await gen.next()
        log.push(`${describeOp(op)}: ${showOutcome(await applyOp(fs, op, held))}`)
      }
    } finally {
      await held.closeAll()
    }
  } finally {
    await mounts.unmountAll()
  }
  await plainRoot(dir)
  await rm(work, { recursive: true, force: true })
  return { dir, log }
}

/**
 * The layer root made like those of the generated layers and of every upper dir here (0755
 * root:root, no user xattrs), whatever the session did to it: with an upper dir the kernel shows
 * the upper dir's own root, while a store snapshot's root is its parent's.
 */
async function plainRoot(dir: string): Promise<void> {
  await chown(dir, 0, 0)
  await chmod(dir, 0o755)
  for (const name of await listAttributes(dir)) if (name.startsWith('user.')) await removeAttribute(dir, name)
}
