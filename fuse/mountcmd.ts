import { rmSync, statSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Option, type Command } from 'commander'
import { fsError, isCode } from '../engine/errors.js'
import { CliError, ReportedExit } from '../engine/cli/errors.js'
import { globalOptions, hostPath, printJson, printText, type GlobalOptions } from '../engine/cli/context.js'
import { connectServer, requestServer } from '../engine/cli/client.js'
import { cliIo } from '../engine/cli/io.js'
import { storeSocketPath } from '../engine/cli/runtime.js'
import { table } from '../engine/cli/format.js'
import { unmountPath } from './channel.js'
import { parseMountOptions, type MountOptionSet } from './options.js'
import { checkCanMount, checkMountpoint } from './preflight.js'
import { FSTYPE, listRecords, mountAt, processAlive, readRecord, removeRecord, type MountRecord } from './registry.js'
import { mountNamespace, requestStore, type DaemonConfig, type MountRequest } from './request.js'
import { runForeground, startDaemon } from './spawn.js'

/** How long `strata umount` waits for a daemon that said it is exiting to be gone. */
const EXIT_WAIT_MS = 10_000

interface MountFlags {
  rw?: boolean
  options?: string[]
  foreground?: boolean
  sloppy?: boolean
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** mount, umount, mounts: Strata trees mounted with FUSE, served by daemons. */
export function registerMount(program: Command): void {
  program
    .command('mount')
    .description('mount a snapshot with FUSE (read-only; an active one writable with --rw), or directories in the kernel overlay format with -o lowerdir=…; without arguments, list the mounts')
    .argument('[source]', "snapshot to mount (with layer options: the name shown as the mount's source)")
    .argument('[mountpoint]', 'existing directory to mount on')
    .option('--rw', 'mount an active snapshot writable: writes go to its layer and stay there after unmounting')
    .option('-o, --options <options>', 'mount options, comma-separated, repeatable: lowerdir=A:B (top first), upperdir=U, workdir=W, snapshot=NAME (a committed snapshot under the lower dirs), store=DIR, redirect_dir=on|follow|nofollow|off, userxattr, ro, and the generic options mount(8) passes', collect)
    .option('-f, --foreground', 'stay in the foreground until the mount ends (Ctrl-C unmounts)')
    .addOption(new Option('--sloppy', 'ignore unknown mount options (mount(8) -s)').hideHelp())
    .action((source: string | undefined, mountpoint: string | undefined, flags: MountFlags, cmd: Command) => mount(source, mountpoint, flags, globalOptions(cmd)))

  program
    .command('umount')
    .alias('unmount')
    .description('unmount a Strata mount; returns once its daemon has let go of the store')
    .argument('<mountpoint>', 'where the mount is')
    .option('-l, --lazy', 'detach it now even while files are open there; it ends when they are closed')
    .action((mountpoint: string, flags: { lazy?: boolean }) => umount(hostPath(mountpoint), flags.lazy === true))

  program
    .command('mounts')
    .description('list Strata mounts: source, mountpoint, mode and daemon')
    .action((_flags: object, cmd: Command) => listMounts(globalOptions(cmd).json))
}

async function mount(source: string | undefined, mountpoint: string | undefined, flags: MountFlags, g: GlobalOptions): Promise<void> {
  if (source === undefined) return listMounts(g.json)
  const positional = mountpoint === undefined ? [source] : [source, mountpoint]
  const mnt = hostPath(positional[positional.length - 1])
  const set = parseMountOptions(flags.options ?? [], { cwd: cliIo().cwd, sloppy: flags.sloppy, mountpoint: mnt })
  const request = buildRequest(positional, mnt, set, flags, g)
  checkCanMount()
  await checkMountpoint(mnt)
  const store = requestStore(request)
  const config: DaemonConfig = { store, request }
  if (store !== undefined) {
    // the store's daemon, if one runs, serves this mount too (one store, one process)
    const probe = await connectServer(storeSocketPath(store))
    if (typeof probe !== 'string') {
      if (flags.foreground) {
        probe.destroy()
        throw new CliError(`store ${store} is held by a running mount daemon, which serves its mounts in the background; mount without -f`)
      }
      const exit = await requestServer(probe, { op: 'mount', request: { ...request, namespace: mountNamespace() } }, cliIo())
      if (exit.retry !== true) {
        if (exit.code !== 0) throw new ReportedExit(exit.code)
        return mounted(exit.result as MountRecord, g.json)
      }
      // that daemon is exiting: a new one takes the store once it has let go
    }
  }
  if (flags.foreground) {
    const code = await runForeground(config)
    if (code !== 0) throw new ReportedExit(code)
    return
  }
  mounted(await startDaemon(config), g.json)
}

function mounted(record: MountRecord, json: boolean): void {
  if (json) printJson(record)
}

function buildRequest(positional: string[], mnt: string, set: MountOptionSet, flags: MountFlags, g: GlobalOptions): MountRequest {
  if (set.layers) {
    if (flags.rw) throw new CliError('--rw mounts a store snapshot; a directory stack is writable when it has an upperdir')
    if (set.lowerdir.length === 0 && set.snapshot === undefined) throw fsError('EINVAL', 'mount', mnt, "missing 'lowerdir'")
    return {
      kind: 'dirs',
      lowerdir: set.lowerdir,
      upperdir: set.upperdir,
      workdir: set.workdir,
      redirectDir: set.redirectDir,
      userxattr: set.userxattr,
      readOnly: set.readOnly,
      snapshot: set.snapshot,
      store: set.snapshot === undefined ? undefined : (set.store ?? g.store),
      mountpoint: mnt,
      fsname: set.fsname ?? (positional.length === 2 ? positional[0] : undefined),
      vfs: set.vfs,
    }
  }
  if (positional.length < 2) throw new CliError('give a snapshot and a mountpoint (strata mount SNAP MNT), or layers (strata mount -o lowerdir=A:B,upperdir=U,workdir=W MNT)')
  if (set.redirectDir !== undefined || set.userxattr) throw new CliError('redirect_dir and userxattr apply to directory layers (-o lowerdir=…)')
  if (flags.rw && set.readOnly) throw new CliError('--rw and -o ro contradict each other')
  return { kind: 'snapshot', store: set.store ?? g.store, key: positional[0], rw: flags.rw === true, mountpoint: mnt, fsname: set.fsname, vfs: set.vfs }
}

/**
 * Asks the daemon serving the mount to unmount it; when that daemon is gone (killed), unmounts
 * with umount(8) and removes what it left behind, so the mountpoint can be mounted again.
 */
async function umount(mnt: string, lazy: boolean): Promise<void> {
  const record = readRecord(mnt)
  if (record) {
    const probe = await connectServer(record.socket).catch(() => 'stale' as const)
    if (typeof probe !== 'string') {
      const exit = await requestServer(probe, { op: 'umount', mountpoint: mnt, lazy }, cliIo())
      const result = exit.result as { served?: boolean; exiting?: boolean; detached?: boolean } | undefined
      // a daemon that is exiting, or that does not serve this mount, leaves the rest to us
      if (exit.retry !== true && result?.served !== false) {
        if (exit.code !== 0) throw new ReportedExit(exit.code)
        if (result?.exiting === true) await waitForExit(record.pid)
        if (result?.detached === true) cliIo().stderr.write(`strata: ${mnt} is detached; it ends when the files open there are closed\n`)
        return
      }
    }
  }
  const top = mountAt(mnt)
  if (top?.fstype !== FSTYPE) {
    if (record) return dropLeftovers(record)
    throw new CliError(`${mnt} is not a strata mount${top ? ` (it is ${top.fstype})` : ''}`)
  }
  try {
    await unmountPath(mnt, lazy)
  } catch (err) {
    if (isCode(err, 'EBUSY')) throw new CliError(`${mnt} is busy (files are open there); close them, or use 'strata umount -l ${mnt}'`)
    throw err
  }
  if (record) dropLeftovers(record)
}

/** The record of a mount whose daemon is gone, and the daemon's socket if nothing listens on it any more. */
async function dropLeftovers(record: MountRecord): Promise<void> {
  removeRecord(record.mountpoint, record.pid)
  let ino: number
  try {
    ino = statSync(record.socket).ino
  } catch {
    return
  }
  const probe = await connectServer(record.socket).catch(() => 'error' as const)
  if (typeof probe !== 'string') probe.destroy()
  if (probe !== 'stale') return
  try {
    // only the file found dead: a daemon started meanwhile has made a new one
    if (statSync(record.socket).ino === ino) rmSync(record.socket, { force: true })
  } catch {
    // gone already
  }
}

async function waitForExit(pid: number): Promise<void> {
  const deadline = Date.now() + EXIT_WAIT_MS
  while (processAlive(pid) && Date.now() < deadline) await sleep(20)
}

function listMounts(json: boolean): void {
  const mounts = listRecords().map((r) => ({ ...r, live: processAlive(r.pid) && mountAt(r.mountpoint)?.fstype === FSTYPE }))
  if (json) return printJson(mounts)
  if (mounts.length === 0) return
  const rows = mounts.map((m) => [m.source, m.mountpoint, m.mode, String(m.pid), m.live ? 'live' : `stale: run 'strata umount ${m.mountpoint}'`])
  printText(table(['SOURCE', 'MOUNTPOINT', 'MODE', 'PID', 'STATE'], rows, new Set([3])))
}
