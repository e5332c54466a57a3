/**
 * The "Strata engine (in-process)" rows: a store holding a stack of kernel-format layer dirs,
 * opened in this process, and the timed operations the workloads run through the API.
 */
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Xxh64 } from '@node-rs/xxhash'
import { Store, type SnapshotFs } from '../../engine/index.js'
import { diskUsageBytes } from '../lib/proc.js'
import { settleStore, MiB } from '../lib/storage.js'
import type { Rows } from './rows.js'
import { SYSTEM, type WorkloadContext } from './types.js'

/**
 * Imports a stack (lowers top first) into an open store, bottom layer first, each layer a child
 * of the one below; returns the name of the top snapshot. Layer names are `l0` (bottom) upwards.
 */
export async function importStack(store: Store, lowers: string[]): Promise<string> {
  if (lowers.length === 0) throw new Error('importStack: no layers')
  let parent = ''
  const bottomFirst = [...lowers].reverse()
  for (let i = 0; i < bottomFirst.length; i++) {
    const name = `l${i}`
    await store.importLayer(bottomFirst[i], { format: 'overlay', name, parent })
    parent = name
  }
  return parent
}

/**
 * A fresh store at `path` holding the stack, closed and compacted (so measurements that follow
 * do not race LevelDB's background compaction). Returns the top snapshot's name.
 */
export async function buildStackStore(path: string, lowers: string[]): Promise<string> {
  await rm(path, { recursive: true, force: true })
  await mkdir(path, { recursive: true })
  const store = await Store.open({ path })
  let snap: string
  try {
    snap = await importStack(store, lowers)
  } finally {
    await store.close()
  }
  await settleStore(path)
  return snap
}

/** Stores already built, by their lowers list: the shared data is imported once per run. */
const built = new Map<string, { path: string; snap: string }>()
let engineRoot: string | undefined
let storeCount = 0

/** Where engine stores go for the whole run (the suite sets it; without it, the workload's scratch). */
export function setEngineRoot(dir: string): void {
  engineRoot = dir
}

/** Removes every engine store of the run. */
export async function dropEngineStores(): Promise<void> {
  for (const { path } of built.values()) await rm(path, { recursive: true, force: true })
  built.clear()
}

/** An open store holding a stack, for the engine rows. Close it before the workload ends. */
export interface EngineStack {
  store: Store
  /** The top snapshot (committed). */
  snap: string
  path: string
  /** A cold engine: closes the store and opens it again (empty chunk and LevelDB caches), running `between` while it is closed. */
  reopen(between?: () => void): Promise<void>
  /** Bytes the store occupies on disk now. */
  diskBytes(): Promise<number>
  close(): Promise<void>
}

/**
 * Opens the engine's own store holding `lowers` (imported on first use, not timed). A store of
 * its own rather than the FUSE store system's: that one is held by its daemon while mounted, and
 * workloads mount it while the engine runs.
 */
/** `openEngineStack`, or undefined once the engine's row of every table is marked failed with why. */
export async function engineStackOr(ctx: WorkloadContext, lowers: string[], tables: Rows[]): Promise<EngineStack | undefined> {
  try {
    return await openEngineStack(ctx.scratch, lowers, ctx.log)
  } catch (err) {
    for (const t of tables) t.fail(SYSTEM.engine, err)
    return undefined
  }
}

export async function openEngineStack(scratch: string, lowers: string[], log: (m: string) => void): Promise<EngineStack> {
  const id = JSON.stringify(lowers)
  let entry = built.get(id)
  if (!entry || !existsSync(entry.path)) {
    const path = join(engineRoot ?? scratch, `engine-store-${++storeCount}`)
    log(`engine: importing ${lowers.length} layer(s) into ${path}`)
    entry = { path, snap: await buildStackStore(path, lowers) }
    built.set(id, entry)
  }
  const { path, snap } = entry
  const stack: EngineStack = {
    store: await Store.open({ path }),
    snap,
    path,
    reopen: async (between) => {
      await stack.store.close()
      between?.()
      stack.store = await Store.open({ path })
    },
    diskBytes: () => diskUsageBytes(path),
    close: () => stack.store.close(),
  }
  return stack
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6
const READ_BUF = Buffer.allocUnsafe(MiB)

/** Reads a whole file through the API in 1 MiB reads (as bench/lib/fileio.ts's sequentialRead does on a host path). */
export async function apiSequentialRead(fs: SnapshotFs, path: string, opts: { digest?: boolean } = {}): Promise<{ bytes: number; ms: number; digest?: string }> {
  const hasher = opts.digest ? new Xxh64() : undefined
  const t0 = process.hrtime.bigint()
  const h = await fs.open(path, 'r')
  let bytes = 0
  try {
    for (;;) {
      const { bytesRead } = await h.read(READ_BUF, 0, READ_BUF.length, bytes)
      if (bytesRead === 0) break
      hasher?.update(READ_BUF.subarray(0, bytesRead))
      bytes += bytesRead
    }
  } finally {
    await h.close()
  }
  return { bytes, ms: ms(t0), digest: hasher?.digest().toString(16) }
}

/** `length` bytes at each offset of a file, read through the API; the time of all of them. */
export async function apiRandomReads(fs: SnapshotFs, path: string, offsets: number[], length: number): Promise<number> {
  const buf = Buffer.allocUnsafe(length)
  const t0 = process.hrtime.bigint()
  const h = await fs.open(path, 'r')
  try {
    for (const off of offsets) {
      const { bytesRead } = await h.read(buf, 0, length, off)
      if (bytesRead !== length) throw new Error(`${path}: short read at ${off} (${bytesRead} of ${length} bytes)`)
    }
  } finally {
    await h.close()
  }
  return ms(t0)
}

/** Bytes at `offset` of a file of the snapshot (for content checks, not timed). */
export async function apiReadAt(fs: SnapshotFs, path: string, offset: number, length: number): Promise<Buffer> {
  const h = await fs.open(path, 'r')
  try {
    const buf = Buffer.alloc(length)
    const { bytesRead } = await h.read(buf, 0, length, offset)
    return buf.subarray(0, bytesRead)
  } finally {
    await h.close()
  }
}

/**
 * Walks a tree through the API: readdir of every directory, and with `stat` an lstat of every
 * entry (what `ls -lR` does); without, the entry types of readdir are enough (what `find` does).
 * `entries` counts every name below `root`.
 */
export async function apiWalk(fs: SnapshotFs, root: string, stat: boolean): Promise<{ entries: number; ms: number }> {
  const t0 = process.hrtime.bigint()
  let entries = 0
  const dirs = [root]
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    for (const d of await fs.readdir(dir, { withFileTypes: true })) {
      entries++
      const path = `${dir}/${d.name}`
      if (stat) await fs.lstat(path)
      if (d.isDirectory()) dirs.push(path)
    }
  }
  return { entries, ms: ms(t0) }
}

export interface ApiWriteTiming {
  /** open to close, milliseconds. */
  ms: number
  openMs: number
  writeMs: number
  syncMs: number
  closeMs: number
}

/** open(r+), write at `offset`, sync, close through the API: the same sequence as pwriteSynced on a mount. */
export async function apiPwriteSynced(fs: SnapshotFs, path: string, data: Buffer, offset: number): Promise<ApiWriteTiming> {
  const t0 = process.hrtime.bigint()
  const h = await fs.open(path, 'r+')
  const openMs = ms(t0)
  let writeMs = openMs
  let syncMs = openMs
  try {
    const { bytesWritten } = await h.write(data, 0, data.length, offset)
    if (bytesWritten !== data.length) throw new Error(`${path}: short write (${bytesWritten} of ${data.length} bytes)`)
    writeMs = ms(t0)
    await h.sync()
    syncMs = ms(t0)
  } finally {
    await h.close()
  }
  const total = ms(t0)
  return { ms: total, openMs, writeMs: writeMs - openMs, syncMs: syncMs - writeMs, closeMs: total - syncMs }
}
