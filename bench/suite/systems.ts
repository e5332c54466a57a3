/**
 * The suite's stack systems (contract: bench/suite/types.ts): kernel overlayfs, fuse-overlayfs,
 * Strata's FUSE mount over directory layers and over store layers, and the plain directory.
 * Each mounts lowers given top first, read-only or over a fresh empty upper.
 */
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { assertMounted, fuseDaemonOf, unmountAndWait, StrataCli } from '../lib/fusesystems.js'
import { diskUsageBytes, runCmd } from '../lib/proc.js'
import { buildStackStore } from './engine.js'
import { SYSTEM, type StackMount, type StackSystem, type SystemName } from './types.js'

export interface SystemsEnv {
  /** Where mount points, upper dirs and stores go (removed by the suite afterwards). */
  scratch: string
  log(msg: string): void
}

type MountOpts = Parameters<StackSystem['mount']>[1]

/** Why `system` cannot take this stack, or undefined when it can. */
export function notApplicable(system: StackSystem, layers: number, writable: boolean): string | undefined {
  if (system.name === SYSTEM.plain && (layers !== 1 || writable)) return 'a plain dir is a single read-only layer (no union, no copy-on-write)'
  if (layers > system.maxLayers) return `takes at most ${system.maxLayers} lower layers`
  return undefined
}

let counter = 0
/** A fresh dir for one mount: `mnt`, and for a writable one `upper` and `work`. */
async function mountDirs(env: SystemsEnv, tag: string, writable: boolean): Promise<{ base: string; mnt: string; upper: string; work: string }> {
  const base = join(env.scratch, 'mounts', `${tag}-${++counter}`)
  const d = { base, mnt: join(base, 'mnt'), upper: join(base, 'upper'), work: join(base, 'work') }
  await mkdir(d.mnt, { recursive: true })
  if (writable) await Promise.all([mkdir(d.upper), mkdir(d.work)])
  return d
}

/** A system's own mounts, so close() can take down whatever a failed workload left. */
class Live {
  readonly mounts = new Set<StackMount>()
  track(m: StackMount): StackMount {
    const unmount = m.unmount
    const tracked: StackMount = { ...m, unmount: async () => { await unmount(); this.mounts.delete(tracked) } }
    this.mounts.add(tracked)
    return tracked
  }
  async unmountAll(log: (m: string) => void): Promise<void> {
    for (const m of [...this.mounts]) await m.unmount().catch((err: Error) => log(`unmount ${m.root}: ${err.message}`))
  }
}

/**
 * The kernel's option string. Mount data is one page for mount(2), which 200 absolute lower paths
 * overflow; overlayfs resolves relative paths against the mounting process's cwd, so long
 * stacks are given relative to the dir their layers share.
 */
function overlayOptions(lowers: string[], d: { upper: string; work: string } | undefined, extra: string[]): { opts: string; cwd?: string } {
  const build = (p: (x: string) => string): string =>
    [`lowerdir=${lowers.map(p).join(':')}`, ...(d ? [`upperdir=${d.upper}`, `workdir=${d.work}`] : []), ...extra].join(',')
  const opts = build((x) => x)
  if (opts.length < 3500) return { opts }
  let cwd = dirname(lowers[0])
  while (cwd !== '/' && !lowers.every((x) => x.startsWith(`${cwd}/`))) cwd = dirname(cwd)
  return { opts: build((x) => relative(cwd, x)), cwd }
}

/** Kernel overlayfs or fuse-overlayfs: the same options, a different mount command. */
function overlayFamily(env: SystemsEnv, name: SystemName, type: string, command: (opts: string, mnt: string, cwd?: string) => Promise<unknown>, why: () => Promise<string | undefined>, maxLayers: number, redirect: boolean): StackSystem {
  const live = new Live()
  return {
    name,
    maxLayers,
    unavailable: why,
    async mount(lowers: string[], opts: MountOpts): Promise<StackMount> {
      const reason = (await why()) ?? notApplicable(this, lowers.length, opts.writable)
      if (reason) throw new Error(`${name}: ${reason}`)
      const d = await mountDirs(env, type.replace(/\W+/g, '-'), opts.writable)
      // fuse-overlayfs has no redirect_dir: it refuses to rename a lower dir (EXDEV), as it would.
      const extra = redirect && opts.redirectDir ? [`redirect_dir=${opts.redirectDir}`] : []
      // The kernel wants two lowers without an upper: an empty one at the bottom changes nothing.
      const stack = !opts.writable && lowers.length === 1 && name === SYSTEM.kernel ? [...lowers, join(d.base, 'empty')] : lowers
      if (stack !== lowers) await mkdir(stack[1])
      const o = overlayOptions(stack, opts.writable ? d : undefined, extra)
      await command(o.opts, d.mnt, o.cwd)
      await assertMounted(d.mnt, type)
      const pid = type.startsWith('fuse') ? fuseDaemonOf(d.mnt) : undefined
      return live.track({
        root: d.mnt,
        pid,
        growthBytes: () => (opts.writable ? diskUsageBytes(d.upper) : Promise.resolve(0)),
        unmount: () => unmountAndWait(d.mnt, pid, () => runCmd('umount', [d.mnt])),
        discard: () => rm(d.base, { recursive: true, force: true }),
      })
    },
    close: () => live.unmountAll(env.log),
  }
}

const needRoot = async (): Promise<string | undefined> => (process.getuid?.() === 0 ? undefined : 'needs root')
const needFuse = async (): Promise<string | undefined> => (await needRoot()) ?? (existsSync('/dev/fuse') ? undefined : 'no /dev/fuse (modprobe fuse)')

export function kernelOverlay(env: SystemsEnv): StackSystem {
  const mount = (opts: string, mnt: string, cwd?: string) => runCmd('mount', ['-t', 'overlay', 'overlay', '-o', opts, mnt], { cwd })
  return overlayFamily(env, SYSTEM.kernel, 'overlay', mount, needRoot, 500, true)
}

export function fuseOverlayfs(env: SystemsEnv): StackSystem {
  const why = async (): Promise<string | undefined> => {
    const r = await runCmd('fuse-overlayfs', ['--version'], { check: false }).catch(() => undefined)
    return r && r.code === 0 ? needFuse() : 'fuse-overlayfs is not installed (apt-get install fuse-overlayfs)'
  }
  const mount = (opts: string, mnt: string, cwd?: string) => runCmd('fuse-overlayfs', ['-o', opts, mnt], { cwd })
  return overlayFamily(env, SYSTEM.fuseOverlayfs, 'fuse.fuse-overlayfs', mount, why, Infinity, false)
}

/** Strata's FUSE mount of kernel-format dirs (`strata mount -o lowerdir=…`): a daemon per mount, no store. */
export function strataDirs(env: SystemsEnv): StackSystem {
  const cli = new StrataCli(join(env.scratch, 'unused-store'))
  const live = new Live()
  return {
    name: SYSTEM.fuseDirs,
    maxLayers: Infinity,
    unavailable: async () => (await needFuse()) ?? cli.hasMount(),
    async mount(lowers: string[], opts: MountOpts): Promise<StackMount> {
      const d = await mountDirs(env, 'strata-dirs', opts.writable)
      const o = [`lowerdir=${lowers.join(':')}`, ...(opts.writable ? [`upperdir=${d.upper}`, `workdir=${d.work}`] : []), ...(opts.redirectDir ? [`redirect_dir=${opts.redirectDir}`] : [])]
      await cli.mountDirs(o.join(','), d.mnt)
      await assertMounted(d.mnt, 'fuse.strata')
      const pid = await cli.daemonOf(d.mnt)
      return live.track({
        root: d.mnt,
        pid,
        growthBytes: () => (opts.writable ? diskUsageBytes(d.upper) : Promise.resolve(0)),
        unmount: () => unmountAndWait(d.mnt, pid, () => cli.umount(d.mnt)),
        discard: () => rm(d.base, { recursive: true, force: true }),
      })
    },
    close: () => live.unmountAll(env.log),
  }
}

/**
 * Strata's FUSE mount of store snapshots. Each distinct stack is imported (in this process, not
 * timed) into a store of its own, which is then closed: the store's daemon, started by the first
 * `strata mount`, holds it while anything is mounted and exits after the last unmount.
 */
export function strataStore(env: SystemsEnv): StackSystem {
  const stores = new Map<string, { cli: StrataCli; snap: string; mounted: number }>()
  const live = new Live()
  let writes = 0
  let count = 0
  const storeFor = async (lowers: string[]) => {
    const id = JSON.stringify(lowers)
    let s = stores.get(id)
    if (!s || !existsSync(s.cli.store)) {
      const path = join(env.scratch, 'stores', `store-${++count}`)
      env.log(`${SYSTEM.fuseStore}: importing ${lowers.length} layer(s) into ${path}`)
      s = { cli: new StrataCli(path), snap: await buildStackStore(path, lowers), mounted: 0 }
      stores.set(id, s)
    }
    return s
  }
  return {
    name: SYSTEM.fuseStore,
    maxLayers: Infinity,
    unavailable: async () => (await needFuse()) ?? new StrataCli(env.scratch).hasMount(),
    // redirectDir does not apply: a store layer records a renamed dir in its own records.
    async mount(lowers: string[], opts: MountOpts): Promise<StackMount> {
      const s = await storeFor(lowers)
      const d = await mountDirs(env, 'strata-store', false)
      const key = opts.writable ? `w${++writes}` : s.snap
      if (opts.writable) await s.cli.prepare(key, s.snap)
      await s.cli.mountSnapshot(key, d.mnt, opts.writable)
      s.mounted++
      let pid: number | undefined
      try {
        await assertMounted(d.mnt, 'fuse.strata')
        pid = await s.cli.daemonOf(d.mnt)
      } catch (err) {
        await s.cli.umount(d.mnt).catch(() => {})
        s.mounted--
        throw err
      }
      return live.track({
        root: d.mnt,
        pid,
        // What the active snapshot holds of its own (chunks and records it does not share with its
        // parent), from `strata usage`: the store's size on disk moves with LevelDB compacting
        // what earlier repetitions left, far more than one repetition adds.
        growthBytes: async () => (opts.writable ? ownUsage(s.cli, key) : 0),
        // The daemon serves every mount of the store; after the last one it exits, and is waited for.
        unmount: async () => {
          s.mounted--
          await unmountAndWait(d.mnt, s.mounted === 0 ? pid : undefined, () => s.cli.umount(d.mnt))
        },
        discard: async () => {
          if (opts.writable) await s.cli.remove(key)
          await rm(d.base, { recursive: true, force: true })
        },
      })
    },
    close: async () => {
      await live.unmountAll(env.log)
      for (const s of stores.values()) await rm(s.cli.store, { recursive: true, force: true })
      stores.clear()
    },
  }
}

/** The lower dir itself: what the disk and the host filesystem cost, with no union at all. */
export function plainDir(): StackSystem {
  return {
    name: SYSTEM.plain,
    maxLayers: 1,
    unavailable: async () => undefined,
    async mount(lowers: string[], opts: MountOpts): Promise<StackMount> {
      const reason = notApplicable(this, lowers.length, opts.writable)
      if (reason) throw new Error(`${SYSTEM.plain}: ${reason}`)
      return { root: lowers[0], growthBytes: async () => 0, unmount: async () => {}, discard: async () => {} }
    },
    close: async () => {},
  }
}

/** Every stack system, in the order of the report's rows. */
export function stackSystems(env: SystemsEnv): StackSystem[] {
  return [strataStore(env), strataDirs(env), kernelOverlay(env), fuseOverlayfs(env), plainDir()]
}

async function ownUsage(cli: StrataCli, key: string): Promise<number> {
  const r = await cli.run(['--json', 'usage', key])
  return (JSON.parse(r.stdout) as { size: number }).size
}
