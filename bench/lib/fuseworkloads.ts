/** The workloads of bench/fuse.ts: each alternates the systems within every repetition and returns every sample. */
import { join } from 'node:path'
import type { DataInfo } from './fusedata.js'
import { lsRecursive, pwriteSynced, readAt, sequentialRead, type PwriteTiming } from './fileio.js'
import type { BenchSystem, Mounted } from './fusesystems.js'
import { dropCaches, pageCacheKiB, rssOf, type Rss } from './proc.js'
import { Prng } from './random.js'
import { KiB, MiB } from './storage.js'
import { fmt, summarize } from './stats.js'
import type { Table } from './table.js'

/** Samples per system name, in the order systems were given. */
export type Samples = Record<string, number[]>

/**
 * Runs `measure` reps × systems times, each repetition starting with the next system, so a slow
 * spell of the machine spreads over all of them instead of landing on one.
 */
export async function alternate<S extends { name: string }>(systems: S[], reps: number, measure: (s: S, rep: number) => Promise<number>): Promise<Samples> {
  const out: Samples = Object.fromEntries(systems.map((s) => [s.name, [] as number[]]))
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < systems.length; i++) {
      const s = systems[(rep + i) % systems.length]
      out[s.name].push(await measure(s, rep))
    }
  }
  return out
}

export interface WorkloadResult {
  title: string
  unit: string
  higherIsBetter: boolean
  samples: Samples
  /** Anything else measured (sizes, growth, memory). */
  extra?: Record<string, unknown>
  notes?: string[]
}

export const median = (xs: number[] | undefined): number => (xs && xs.length ? summarize(xs).median : NaN)

/** Mounts every system's read view, runs `fn`, and unmounts whatever happens. */
export async function withReadMounts<T>(systems: BenchSystem[], fn: (mounts: Map<string, Mounted>) => Promise<T>): Promise<T> {
  const mounts = new Map<string, Mounted>()
  try {
    for (const s of systems) mounts.set(s.name, await s.mountRead())
    return await fn(mounts)
  } finally {
    for (const m of mounts.values()) await m.unmount().catch((err: Error) => process.stderr.write(`unmount failed: ${err.message}\n`))
  }
}

export async function readWorkload(systems: BenchSystem[], data: DataInfo, reps: number, cold: boolean, expected: string): Promise<WorkloadResult> {
  const title = `Sequential read of a ${data.bigBytes / MiB} MiB lower file, ${cold ? 'cold' : 'warm'} (1 MiB reads)`
  const mbps = (r: { bytes: number; ms: number }): number => r.bytes / 1e6 / (r.ms / 1000)
  if (cold) {
    // A fresh mount for every read: a FUSE daemon's own cache (Strata's chunk cache) must not
    // survive the drop of the kernel's caches either. Mounting is not timed.
    const samples = await alternate(systems, reps, async (s) => {
      const m = await s.mountRead()
      try {
        dropCaches()
        return mbps(await sequentialRead(join(m.root, 'big')))
      } finally {
        await m.unmount()
      }
    })
    return { title, unit: 'MB/s', higherIsBetter: true, samples, notes: ['Each read on a fresh mount (daemons started anew), after dropping the page cache, dentries and inodes.'] }
  }
  return withReadMounts(systems, async (mounts) => {
    // One untimed read each: checks the content, and fills the caches the warm case is about.
    for (const s of systems) {
      const r = await sequentialRead(join(mounts.get(s.name)!.root, 'big'), { digest: true })
      if (r.digest !== expected || r.bytes !== data.bigBytes) throw new Error(`${s.name}: read ${r.bytes} bytes, xxh64 ${r.digest}; expected ${data.bigBytes}, ${expected}`)
    }
    const samples = await alternate(systems, reps, async (s) => mbps(await sequentialRead(join(mounts.get(s.name)!.root, 'big'))))
    return { title, unit: 'MB/s', higherIsBetter: true, samples, notes: ['Every system read the file once before (untimed, content checked); a FUSE mount that keeps its page cache answers from it without asking the daemon.'] }
  })
}

export async function lsWorkload(systems: BenchSystem[], data: DataInfo, reps: number): Promise<WorkloadResult> {
  return withReadMounts(systems, async (mounts) => {
    const lines: Record<string, number> = {}
    for (const s of systems) lines[s.name] = (await lsRecursive(join(mounts.get(s.name)!.root, 'tree'))).lines
    const counts = new Set(Object.values(lines))
    if (counts.size > 1) throw new Error(`ls -lR gave different line counts: ${JSON.stringify(lines)}`)
    const samples = await alternate(systems, reps, async (s) => (await lsRecursive(join(mounts.get(s.name)!.root, 'tree'))).ms)
    return {
      title: `ls -lR over ${data.dirs * data.filesPerDir} files in ${data.dirs} dirs, warm`,
      unit: 'ms',
      higherIsBetter: false,
      samples,
      extra: { lines },
      notes: ['One untimed ls -lR per system first; its output line counts agree across systems.'],
    }
  })
}

export interface CopyUpSample extends PwriteTiming {
  warm: boolean
  growthBytes: number
}

export async function copyUpWorkload(systems: BenchSystem[], data: DataInfo, reps: number): Promise<WorkloadResult[]> {
  const writers = systems.filter((s) => s.mountWrite)
  const offset = Math.floor(data.bigBytes / 2 / (4 * KiB)) * 4 * KiB
  const all: Record<string, CopyUpSample[]> = Object.fromEntries(writers.map((s) => [s.name, []]))
  let n = 0
  for (const warm of [true, false]) {
    await alternate(writers, reps, async (s) => {
      const patch = new Prng(1000 + ++n).bytes(4 * KiB)
      const m = await s.mountWrite!()
      try {
        const file = join(m.root, 'big')
        // Warm: the file was just read through the mount, as after a build step that used it.
        if (warm) await sequentialRead(file)
        else dropCaches()
        const w = pwriteSynced(file, patch, offset)
        if (!readAt(file, offset, patch.length).equals(patch)) throw new Error(`${s.name}: the 4 KiB written at ${offset} does not read back`)
        const growthBytes = await m.growthBytes()
        all[s.name].push({ warm, ...w, growthBytes })
        return w.ms
      } finally {
        await m.unmount()
        await m.discard()
      }
    })
  }
  const pick = (warm: boolean): Samples => Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.filter((x) => x.warm === warm).map((x) => x.ms)]))
  const growth = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, median(v.map((x) => x.growthBytes))]))
  const phases = (warm: boolean): string => Object.entries(all).map(([k, v]) => {
    const w = v.filter((x) => x.warm === warm)
    const p = (f: (x: CopyUpSample) => number): string => fmt(median(w.map(f)))
    return `${k} ${p((x) => x.openMs)} / ${p((x) => x.writeMs)} / ${p((x) => x.fsyncMs)} / ${p((x) => x.closeMs)}`
  }).join('; ')
  const growthNote = `Upper layer growth (median): ${Object.entries(growth).map(([k, v]) => `${k} ${fmtBytes(v)}`).join(', ')}.`
  const title = (w: string): string => `4 KiB write into the middle of a ${data.bigBytes / MiB} MiB lower file (open O_RDWR, pwrite, fsync, close), ${w}`
  return [
    { title: title('warm'), unit: 'ms', higherIsBetter: false, samples: pick(true), extra: { growthBytes: growth, samples: all }, notes: [growthNote, `Median ms of open / pwrite / fsync / close: ${phases(true)}.`, 'Each sample on a fresh upper layer (a new active snapshot for Strata); warm: the file was read through the mount just before.'] },
    { title: title('cold'), unit: 'ms', higherIsBetter: false, samples: pick(false), notes: [`Median ms of open / pwrite / fsync / close: ${phases(false)}.`, 'Page cache dropped after mounting, before the write.'] },
  ]
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '?'
  if (n >= 1024 * MiB) return `${fmt(n / (1024 * MiB))} GiB`
  if (n >= MiB) return `${fmt(n / MiB)} MiB`
  return `${fmt(n / KiB)} KiB`
}

export interface TwoMountsRow {
  system: string
  pids: number[]
  /** Summed over the serving processes: after mounting, after the read through the first mount, after the second. */
  rssKiB: { mounted: Rss; afterFirst: Rss; afterSecond: Rss }
  pageCacheKiB: { mounted: number; afterFirst: number; afterSecond: number }
}

/**
 * The same tree mounted twice, the big file read through both: how much memory each read adds,
 * in the daemons and in the page cache. Strata's store daemon serves both mounts from one chunk
 * cache, so the second read should add little to its anonymous memory. File-backed RSS is
 * counted apart: LevelDB maps its table files, so pages of the page cache show in the daemon's RSS.
 */
export async function twoMountsWorkload(systems: BenchSystem[], data: DataInfo): Promise<{ table: Table; rows: TwoMountsRow[] }> {
  const rows: TwoMountsRow[] = []
  for (const s of systems) {
    if (s.name === 'plain dir') continue
    dropCaches()
    const a = await s.mountRead()
    try {
      const b = await s.mountRead()
      try {
        const pids = [...new Set([a.pid, b.pid].filter((p): p is number => p !== undefined))]
        const rss = (): Rss => pids.map(rssOf).reduce((x, y) => ({ total: x.total + y.total, anon: x.anon + y.anon, file: x.file + y.file }), { total: 0, anon: 0, file: 0 })
        dropCaches()
        const mounted = { rss: rss(), cache: pageCacheKiB() }
        await sequentialRead(join(a.root, 'big'))
        const first = { rss: rss(), cache: pageCacheKiB() }
        await sequentialRead(join(b.root, 'big'))
        const second = { rss: rss(), cache: pageCacheKiB() }
        rows.push({ system: s.name, pids, rssKiB: { mounted: mounted.rss, afterFirst: first.rss, afterSecond: second.rss }, pageCacheKiB: { mounted: mounted.cache, afterFirst: first.cache, afterSecond: second.cache } })
      } finally {
        await b.unmount()
      }
    } finally {
      await a.unmount()
    }
  }
  const mib = (kib: number): string => fmt(kib / 1024)
  const daemon = (r: TwoMountsRow, f: (r: TwoMountsRow) => number): string => (r.pids.length ? mib(f(r)) : '—')
  const table: Table = {
    title: `Two mounts of the same tree, the ${data.bigBytes / MiB} MiB file read through each (MiB)`,
    headers: ['system', 'daemons', 'anon RSS mounted', '+ 1st read', '+ 2nd read', 'file RSS after 1st', 'after 2nd', 'page cache + 1st read', '+ 2nd read'],
    rows: rows.map((r) => [
      r.system,
      r.pids.length ? String(r.pids.length) : '—',
      daemon(r, (x) => x.rssKiB.mounted.anon),
      daemon(r, (x) => x.rssKiB.afterFirst.anon - x.rssKiB.mounted.anon),
      daemon(r, (x) => x.rssKiB.afterSecond.anon - x.rssKiB.afterFirst.anon),
      daemon(r, (x) => x.rssKiB.afterFirst.file),
      daemon(r, (x) => x.rssKiB.afterSecond.file),
      mib(r.pageCacheKiB.afterFirst - r.pageCacheKiB.mounted),
      mib(r.pageCacheKiB.afterSecond - r.pageCacheKiB.afterFirst),
    ]),
    notes: ['RSS of the processes serving the two mounts (one Strata store daemon serves both), from /proc/PID/status: RssAnon (heap, caches) and RssFile (mapped files: page cache pages, already counted in the page cache column). Page cache: Cached of /proc/meminfo, machine-wide.'],
  }
  return { table, rows }
}
