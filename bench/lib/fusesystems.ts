import { existsSync, readFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { diskUsageBytes, fuseDaemons, mountType, runCmd } from './proc.js'

/** A merged tree mounted for a measurement. */
export interface Mounted {
  /** Where the merged tree is seen (the mount point, or the plain dir itself). */
  root: string
  /** The process serving the mount (FUSE daemons only). */
  pid?: number
  unmount(): Promise<void>
}

/** A writable mount over the data, with a fresh upper layer. */
export interface WritableMount extends Mounted {
  /** Bytes the write side holds now: the upper dir on disk, or the active snapshot's own layer. */
  growthBytes(): Promise<number>
  /** Deletes the upper layer (after unmount). */
  discard(): Promise<void>
}

export interface SystemEnv {
  /** The host dir holding the data every system serves (the lower layer). */
  data: string
  /** Scratch space for mount points, upper dirs and the store. */
  scratch: string
  log: (msg: string) => void
}

/** One filesystem under test. */
export interface BenchSystem {
  name: string
  /** Why it cannot run here, or undefined when it can. */
  unavailable(): Promise<string | undefined>
  /** One-time work before any mount (Strata: import the data as a snapshot); returns what it measured. */
  setup?(): Promise<Record<string, number>>
  mountRead(): Promise<Mounted>
  /** Systems that cannot take the write case (the plain dir would change the shared data) leave it out. */
  mountWrite?(): Promise<WritableMount>
  teardown?(): Promise<void>
}

export const repoRoot = (): string => resolve(fileURLToPath(import.meta.url), '../../../..')
const strataBin = (): string => join(repoRoot(), 'bin', 'strata.js')

let counter = 0
async function freshDir(env: SystemEnv, kind: string, system: string): Promise<string> {
  const dir = join(env.scratch, kind, `${system}-${++counter}`)
  await mkdir(dir, { recursive: true })
  return dir
}

/** Fails unless a mount of `type` (overlay, fuse.strata...) is now at `mnt`. */
export async function assertMounted(mnt: string, type: string): Promise<void> {
  const got = mountType(mnt)
  if (got !== type) throw new Error(`${mnt}: expected a ${type} mount after mounting, found ${got ?? 'nothing'}`)
}

/** Unmounts and waits for the daemon (if any) to end, so it does not compete with the next measurement. */
export async function unmountAndWait(mnt: string, pid: number | undefined, umount: () => Promise<unknown>): Promise<void> {
  await umount()
  if (mountType(mnt) !== undefined) throw new Error(`${mnt} still mounted after unmount`)
  if (pid === undefined) return
  for (let i = 0; i < 200 && running(pid); i++) await new Promise((r) => setTimeout(r, 25))
}

/** Whether a process still runs: an exited one may stay a zombie until init reaps it (here, a second or more). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** The data dir itself: what a disk read costs without any union filesystem. */
export function plainDir(env: SystemEnv): BenchSystem {
  return {
    name: 'plain dir',
    unavailable: async () => undefined,
    mountRead: async () => ({ root: env.data, unmount: async () => {} }),
  }
}

/** Upper and work dirs for an overlay mount over the data. */
async function overlayDirs(env: SystemEnv, system: string): Promise<{ mnt: string; upper: string; work: string; opts: string }> {
  const base = await freshDir(env, 'layers', system)
  const upper = join(base, 'upper')
  const work = join(base, 'work')
  const mnt = join(base, 'mnt')
  await Promise.all([mkdir(upper), mkdir(work), mkdir(mnt)])
  return { mnt, upper, work, opts: `lowerdir=${env.data},upperdir=${upper},workdir=${work}` }
}

function overlayMount(env: SystemEnv, name: string, mount: (opts: string, mnt: string) => Promise<unknown>, type: string): () => Promise<WritableMount> {
  return async () => {
    const d = await overlayDirs(env, name.replace(/\W+/g, '-'))
    await mount(d.opts, d.mnt)
    await assertMounted(d.mnt, type)
    const pid = type.startsWith('fuse') ? fuseDaemonOf(d.mnt) : undefined
    return {
      root: d.mnt,
      pid,
      unmount: () => unmountAndWait(d.mnt, pid, () => runCmd('umount', [d.mnt])),
      growthBytes: () => diskUsageBytes(d.upper),
      discard: () => rm(join(d.mnt, '..'), { recursive: true, force: true }),
    }
  }
}

/** The FUSE daemon whose command line names this mount point. */
export function fuseDaemonOf(mnt: string): number | undefined {
  return fuseDaemons().find((d) => d.cmdline.split(' ').includes(mnt))?.pid
}

/** Linux overlayfs, the reference: reads and lookups go straight to the lower filesystem. */
export function kernelOverlay(env: SystemEnv): BenchSystem {
  const mount = overlayMount(env, 'kernel', (opts, mnt) => runCmd('mount', ['-t', 'overlay', 'overlay', '-o', opts, mnt]), 'overlay')
  return {
    name: 'kernel overlayfs',
    unavailable: async () => {
      if (process.getuid?.() !== 0) return 'needs root'
      return undefined
    },
    mountRead: mount,
    mountWrite: mount,
  }
}

/** fuse-overlayfs (libfuse 3, C): the other FUSE implementation of overlayfs. */
export function fuseOverlayfs(env: SystemEnv): BenchSystem {
  const mount = overlayMount(env, 'fuse-overlayfs', (opts, mnt) => runCmd('fuse-overlayfs', ['-o', opts, mnt]), 'fuse.fuse-overlayfs')
  return {
    name: 'fuse-overlayfs',
    unavailable: async () => {
      if (process.getuid?.() !== 0) return 'needs root'
      const r = await runCmd('fuse-overlayfs', ['--version'], { check: false }).catch(() => undefined)
      return r && r.code === 0 ? undefined : 'fuse-overlayfs not installed (apt-get install fuse-overlayfs)'
    },
    mountRead: mount,
    mountWrite: mount,
  }
}

/**
 * Strata's command line, run as a child process so the daemons it starts are what a user gets.
 * All command lines of the bench are here, in one place.
 */
export class StrataCli {
  constructor(readonly store: string) {}

  run(args: string[], opts: { check?: boolean } = {}) {
    return runCmd(process.execPath, [strataBin(), '--store', this.store, ...args], opts)
  }

  /** Whether this checkout's CLI has the mount commands yet. */
  async hasMount(): Promise<string | undefined> {
    if (!existsSync(join(repoRoot(), 'dist', 'engine', 'cli', 'main.js'))) return 'Strata not built (npx tsc -p .)'
    const r = await runCmd(process.execPath, [strataBin(), 'mount', '--help'], { check: false })
    return r.code === 0 ? undefined : `no 'strata mount' in this build (${(r.stderr || r.stdout).trim().split('\n')[0]})`
  }

  snapshot(dir: string, name: string) {
    return this.run(['snapshot', dir, '--name', name])
  }

  prepare(key: string, parent: string) {
    return this.run(['prepare', key, parent])
  }

  remove(key: string) {
    return this.run(['rm', key])
  }

  mountSnapshot(key: string, mnt: string, rw: boolean) {
    return this.run(['mount', ...(rw ? ['--rw'] : []), key, mnt])
  }

  /** A directory stack, without the store: the kernel's option string. */
  mountDirs(opts: string, mnt: string) {
    return runCmd(process.execPath, [strataBin(), 'mount', '-o', opts, mnt])
  }

  umount(mnt: string) {
    return runCmd(process.execPath, [strataBin(), 'umount', mnt])
  }

  /** The daemon serving `mnt` (the store's daemon for a snapshot mount), from `strata mounts`. */
  async daemonOf(mnt: string): Promise<number | undefined> {
    const r = await this.run(['--json', 'mounts'])
    const list = JSON.parse(r.stdout) as Array<{ mountpoint: string; pid: number }>
    return list.find((m) => m.mountpoint === mnt)?.pid
  }
}

/** Strata serving a committed snapshot of the data from its store. */
export function strataStore(env: SystemEnv): BenchSystem & { cli: StrataCli; mountSnapshotAt(mnt: string): Promise<Mounted> } {
  const cli = new StrataCli(join(env.scratch, 'store'))
  let writes = 0
  const mountAt = async (key: string, mnt: string, rw: boolean): Promise<Mounted> => {
    await cli.mountSnapshot(key, mnt, rw)
    await assertMounted(mnt, 'fuse.strata')
    const pid = await cli.daemonOf(mnt)
    // The store daemon serves other mounts and stays; only the mount goes.
    return { root: mnt, pid, unmount: () => unmountAndWait(mnt, undefined, () => cli.umount(mnt)) }
  }
  return {
    name: 'Strata',
    cli,
    unavailable: () => cli.hasMount(),
    setup: async () => {
      const t0 = process.hrtime.bigint()
      await cli.snapshot(env.data, 'base')
      return { snapshotMs: Number(process.hrtime.bigint() - t0) / 1e6 }
    },
    mountSnapshotAt: (mnt) => mountAt('base', mnt, false),
    mountRead: async () => mountAt('base', await freshDir(env, 'mnt', 'strata'), false),
    mountWrite: async () => {
      const key = `bench-write-${++writes}`
      await cli.prepare(key, 'base')
      // Growth of the store on disk: the chunks and records the write added (LevelDB's log included).
      const before = await diskUsageBytes(cli.store)
      const m = await mountAt(key, await freshDir(env, 'mnt', 'strata'), true)
      return { ...m, growthBytes: async () => (await diskUsageBytes(cli.store)) - before, discard: async () => { await cli.remove(key) } }
    },
  }
}

/** Strata over plain directories in the kernel's format (lowerdir/upperdir/workdir), no store. */
export function strataDirs(env: SystemEnv): BenchSystem {
  const cli = new StrataCli(join(env.scratch, 'store'))
  const mount = async (): Promise<WritableMount> => {
    const d = await overlayDirs(env, 'strata-dirs')
    await cli.mountDirs(d.opts, d.mnt)
    await assertMounted(d.mnt, 'fuse.strata')
    const pid = await cli.daemonOf(d.mnt)
    return {
      root: d.mnt,
      pid,
      unmount: () => unmountAndWait(d.mnt, pid, () => cli.umount(d.mnt)),
      growthBytes: () => diskUsageBytes(d.upper),
      discard: () => rm(join(d.mnt, '..'), { recursive: true, force: true }),
    }
  }
  return {
    name: 'Strata dirs',
    unavailable: () => cli.hasMount(),
    mountRead: mount,
    mountWrite: mount,
  }
}
