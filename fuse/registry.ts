import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkedSocketPath, ensureRuntimeDir, pathHash, runtimeDir } from '../engine/cli/runtime.js'

/** The filesystem type of Strata's FUSE mounts in the mount table. */
export const FSTYPE = 'fuse.strata'

/**
 * What the runtime dir keeps of a mount, `mounts/<hash of mountpoint>.json`: enough for
 * `strata umount` to reach the daemon serving it, or to clean up after one that died.
 */
export interface MountRecord {
  mountpoint: string
  /** What is mounted, as the user named it: a snapshot key, or the layer options. */
  source: string
  mode: 'ro' | 'rw'
  kind: 'snapshot' | 'dirs'
  /** The daemon serving the mount. */
  pid: number
  /** The daemon's socket (the store's, or the mount's own for a directory stack without a store). */
  socket: string
  /** The daemon's log. */
  log: string
  store?: string
  started: string
}

const mountsDir = (): string => join(runtimeDir(), 'mounts')

export function recordPath(mountpoint: string): string {
  return join(mountsDir(), `${pathHash(mountpoint)}.json`)
}

/** The socket of a daemon serving one directory-stack mount (no store, so no store socket). */
export function mountSocketPath(mountpoint: string): string {
  return checkedSocketPath(join(runtimeDir(), `mnt-${pathHash(mountpoint)}.sock`))
}

/** The log of the daemon serving the store at `store`, or the directory-stack mount at `mountpoint`. */
export function daemonLogPath(target: { store: string } | { mountpoint: string }): string {
  return 'store' in target ? join(runtimeDir(), `store-${pathHash(target.store)}.log`) : join(runtimeDir(), `mnt-${pathHash(target.mountpoint)}.log`)
}

/** Written whole under a temporary name and renamed, so a reader never sees half a record. */
export function writeRecord(record: MountRecord): void {
  ensureRuntimeDir()
  mkdirSync(mountsDir(), { recursive: true, mode: 0o700 })
  const path = recordPath(record.mountpoint)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 })
  renameSync(tmp, path)
}

export function readRecord(mountpoint: string): MountRecord | undefined {
  return parseRecord(recordPath(mountpoint))
}

/** Removes the record of `mountpoint`, only if it is still the one of daemon `pid` when given. */
export function removeRecord(mountpoint: string, pid?: number): void {
  const path = recordPath(mountpoint)
  if (pid !== undefined && parseRecord(path)?.pid !== pid) return
  rmSync(path, { force: true })
}

export function listRecords(): MountRecord[] {
  let names: string[]
  try {
    names = readdirSync(mountsDir())
  } catch {
    return []
  }
  const records: MountRecord[] = []
  for (const name of names) {
    if (!name.endsWith('.json')) continue
    const r = parseRecord(join(mountsDir(), name))
    if (r) records.push(r)
  }
  return records.sort((a, b) => (a.mountpoint < b.mountpoint ? -1 : a.mountpoint > b.mountpoint ? 1 : 0))
}

function parseRecord(path: string): MountRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as MountRecord
    return typeof r.mountpoint === 'string' && typeof r.pid === 'number' && typeof r.socket === 'string' ? r : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether a process with this pid runs (it may be another program that reused the pid). A zombie
 * does not count: a daemon's parent has exited, and whoever inherited it may reap it late.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // the state follows the command name, which is in parentheses and may itself hold spaces
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}

/** One line of /proc/self/mountinfo. */
export interface MountInfo {
  mountpoint: string
  fstype: string
  source: string
}

/** The mount on top at `mountpoint` (absolute, as path.resolve gives it), if any. */
export function mountAt(mountpoint: string): MountInfo | undefined {
  let found: MountInfo | undefined
  for (const m of mountTable()) if (m.mountpoint === mountpoint) found = m
  return found
}

export function mountTable(): MountInfo[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8')
  const mounts: MountInfo[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const fields = line.split(' ')
    const dash = fields.indexOf('-', 6)
    if (dash < 0 || fields.length < dash + 3) continue
    mounts.push({ mountpoint: unescapeMountinfo(fields[4]), fstype: fields[dash + 1], source: unescapeMountinfo(fields[dash + 2]) })
  }
  return mounts
}

/** The kernel writes space, tab, newline and backslash in mount table fields as octal escapes. */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}
