import { chmod, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { Store, openDirStack } from '../../engine/index.js'
import { HostFs, type FsUnderTest } from './fsut.js'
import { mountOverlay, unmount } from './mounts.js'
import { StrataFs } from './strata-fsut.js'
import { fuseDirSut, fuseStoreSut } from './fuse-sides.js'

/**
 * The two sides of one run, each over the same lower dirs (read-only, shared):
 *   dir   Strata opens the lower dirs as directory layers with a directory upper; against the
 *         kernel with index=off (without the index the kernel breaks hard links on copy-up, and
 *         a directory upper cannot express more).
 *   store the lower dirs imported as a chain of store layers; Strata keeps hard links as one inode
 *         across copy-up, as the kernel does with index=on.
 *   stack the bottom half of the lower dirs imported into the store, the others stacked on that
 *         snapshot as directory layers with a directory upper (as store.stackFs); index=off.
 *   self  a second kernel mount in place of Strata: checks the harness itself (no differences).
 *   fuse-dir, fuse-store  as dir and store, but Strata is reached through its FUSE mount, served
 *         by another process (fuse-sides.ts): every call is a system call on the mount.
 * After the operations, `afterwards` yields more trees that must equal the reference: the
 * kernel's own view of what the side left on disk (and the store's snapshot once committed).
 */

export type Mode = 'dir' | 'store' | 'stack' | 'self' | 'fuse-dir' | 'fuse-store'
export const MODES: Mode[] = ['dir', 'store', 'stack', 'self', 'fuse-dir', 'fuse-store']

export interface Sides {
  ref: FsUnderTest
  sut: FsUnderTest
  /** Closes `sut` first; each tree yielded is closed by the caller. */
  afterwards(): AsyncGenerator<FsUnderTest>
}


const KERNEL_OPTS: Record<Mode, string[]> = {
  dir: ['redirect_dir=on', 'index=off'],
  store: ['redirect_dir=on', 'index=on'],
  stack: ['redirect_dir=on', 'index=off'],
  self: ['redirect_dir=on', 'index=off'],
  'fuse-dir': ['redirect_dir=on', 'index=off'],
  'fuse-store': ['redirect_dir=on', 'index=on'],
}

export const refLabel = (mode: Mode): string => `kernel (${KERNEL_OPTS[mode].join(',')})`

/** Mount points made in one run, unmounted by `unmountAll` whatever happened. */
export class Mounts {
  private readonly live: string[] = []
  constructor(private readonly base: string) {}

  /** A fresh dir under the run's base, searchable by every caller the operations run as. */
  async dir(name: string): Promise<string> {
    const d = await mkdtemp(join(this.base, `${name}-`))
    await chmod(d, 0o755)
    return d
  }

  async mountWith(name: string, target: string, o: { lowerdir: string[]; upperdir?: string; workdir?: string; options: string[] }): Promise<HostFs> {
    await mountOverlay(target, o)
    this.live.push(target)
    return new HostFs(name, target, () => this.unmount(target))
  }

  async unmount(target: string): Promise<void> {
    const i = this.live.indexOf(target)
    if (i < 0) return
    this.live.splice(i, 1)
    await unmount(target)
  }

  async unmountAll(): Promise<void> {
    const errors: unknown[] = []
    for (const t of [...this.live].reverse()) await this.unmount(t).catch((e) => errors.push(e))
    if (errors.length > 0) throw errors[0]
  }
}

/**
 * An upper and a work dir. The merged root shows the upper dir's own attributes: 0755 root:root
 * (Mounts.dir), as the roots of the lower layers, the same on every side.
 */
async function newUpper(m: Mounts, name: string): Promise<{ upperdir: string; workdir: string }> {
  return { upperdir: await m.dir(`${name}-upper`), workdir: await m.dir(`${name}-work`) }
}

export async function makeSides(mode: Mode, m: Mounts, lowers: string[]): Promise<Sides> {
  const opts = KERNEL_OPTS[mode]
  const refUp = await newUpper(m, 'ref')
  const ref = await m.mountWith(refLabel(mode), await m.dir('ref'), { lowerdir: lowers, ...refUp, options: opts })
  if (mode === 'self') return selfSides(m, lowers, ref)
  if (mode === 'dir' || mode === 'fuse-dir') return dirSides(m, lowers, ref, mode === 'fuse-dir')
  if (mode === 'stack') return stackSides(m, lowers, ref)
  return storeSides(m, lowers, ref, mode === 'fuse-store')
}

async function selfSides(m: Mounts, lowers: string[], ref: FsUnderTest): Promise<Sides> {
  const opts = KERNEL_OPTS.self
  const up = await newUpper(m, 'sut')
  const sut = await m.mountWith('second kernel mount', await m.dir('sut'), { lowerdir: lowers, ...up, options: opts })
  return {
    ref,
    sut,
    async *afterwards() {
      await sut.close()
      yield await m.mountWith('kernel over the second mount\'s upper dir', await m.dir('again'), { lowerdir: lowers, upperdir: up.upperdir, workdir: await m.dir('again-work'), options: opts })
      yield await m.mountWith('the second mount\'s upper dir as a read-only lower', await m.dir('ro'), { lowerdir: [up.upperdir, ...lowers], options: ['redirect_dir=on'] })
    },
  }
}

async function dirSides(m: Mounts, lowers: string[], ref: FsUnderTest, viaFuse: boolean): Promise<Sides> {
  const up = await newUpper(m, 'strata')
  let sut: FsUnderTest
  if (viaFuse) sut = await fuseDirSut(m, lowers, up)
  else {
    // one overlay for every caller
    const fs = await openDirStack({ lowerdir: lowers, ...up, redirectDir: 'on' })
    sut = new StrataFs('Strata dir stack', (creds) => fs.withCreds(creds), async () => {})
  }
  return {
    ref,
    sut,
    async *afterwards() {
      await sut.close()
      yield await m.mountWith('kernel over Strata\'s upper dir', await m.dir('again'), { lowerdir: lowers, upperdir: up.upperdir, workdir: await m.dir('again-work'), options: KERNEL_OPTS.dir })
    },
  }
}

/** A store with `dirs` (top first) imported as a chain of committed snapshots; the top one's name. */
async function importedStore(m: Mounts, dirs: string[]): Promise<{ store: Store; path: string; top: string; close: () => Promise<void> }> {
  const path = await m.dir('store')
  const store = await Store.open({ path })
  let closed = false
  const close = async (): Promise<void> => {
    if (!closed) await store.close()
    closed = true
  }
  try {
    let parent: string | undefined
    for (let i = dirs.length - 1; i >= 0; i--) {
      const name = `lower-${i}`
      await store.importLayer(dirs[i], { format: 'overlay', name, ...(parent ? { parent } : {}) })
      parent = name
    }
    return { store, path, top: parent!, close }
  } catch (err) {
    await close()
    throw err
  }
}

async function stackSides(m: Mounts, lowers: string[], ref: FsUnderTest): Promise<Sides> {
  const split = Math.ceil(lowers.length / 2)
  const { store, top, close } = await importedStore(m, lowers.slice(split))
  try {
    const up = await newUpper(m, 'strata')
    const fs = store.stackFs({ base: top, lowerdir: lowers.slice(0, split), ...up, redirectDir: 'on' })
    const sut = new StrataFs('Strata dir layers over a store snapshot', (creds) => fs.withCreds(creds), close)
    return {
      ref,
      sut,
      async *afterwards() {
        await sut.close()
        yield await m.mountWith('kernel over Strata\'s upper dir', await m.dir('again'), { lowerdir: lowers, upperdir: up.upperdir, workdir: await m.dir('again-work'), options: KERNEL_OPTS.stack })
      },
    }
  } catch (err) {
    await close()
    throw err
  }
}

async function storeSides(m: Mounts, lowers: string[], ref: FsUnderTest, viaFuse: boolean): Promise<Sides> {
  const imported = await importedStore(m, lowers)
  let { store, close } = imported
  try {
    await store.prepare('work', imported.top)
    let sut: FsUnderTest
    if (viaFuse) {
      sut = await fuseStoreSut(m, store, imported.path, 'work')
    } else sut = new StrataFs('Strata store stack', (creds) => store.fs('work', { redirectDir: 'on', creds }), close)
    return {
      ref,
      sut,
      async *afterwards() {
        if (viaFuse) {
          // the server had the store: it is ours again once the mount is gone
          await sut.close()
          store = await Store.open({ path: imported.path })
          const reopened = store
          close = () => reopened.close()
        }
        await store.commit('final', 'work')
        yield new StrataFs('Strata store, the snapshot committed', (creds) => store.fs('final', { creds }), async () => {})
        const { lowerdir } = await store.exportLayer('final', await m.dir('export'), { format: 'overlay' })
        await sut.close()
        if (viaFuse) await close()
        const dirs = lowerdir!.split(':')
        yield await m.mountWith('kernel over the exported store stack (read-only)', await m.dir('export-mnt'), { lowerdir: dirs, options: ['redirect_dir=on'] })
      },
    }
  } catch (err) {
    await close()
    throw err
  }
}
