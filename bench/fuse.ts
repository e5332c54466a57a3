/**
 * FUSE benchmarks: Strata's mounts side by side with kernel overlayfs, fuse-overlayfs and the
 * plain directory, in one run, systems alternated within every repetition (a 2-core VM swings
 * FUSE timings 3–4× with what the other core does, so only ratios taken together mean much).
 *
 *   node dist/bench/fuse.js [--quick] [--size 1G] [--files 20000] [--dirs 200] [--reps N]
 *        [--only read-warm,read-cold,ls,copyup,two-mounts] [--systems kernel,fuse-overlayfs,strata,strata-dirs,plain]
 *        [--json FILE] [--dir DIR] [--keep]
 *
 * Needs root (mounts, drop_caches). Results: a table per workload, a headline table of the
 * targets, and every sample as JSON (default bench/results/fuse-<time>.json).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs as parseCli } from 'node:util'
import { ensureData, parseSize, type DataInfo } from './lib/fusedata.js'
import { sequentialRead } from './lib/fileio.js'
import { deviceReadAhead } from './lib/proc.js'
import { fuseOverlayfs, kernelOverlay, plainDir, strataDirs, strataStore, type BenchSystem, type SystemEnv } from './lib/fusesystems.js'
import { copyUpWorkload, lsWorkload, median, readWorkload, twoMountsWorkload, type TwoMountsRow, type WorkloadResult } from './lib/fuseworkloads.js'
import { MiB } from './lib/storage.js'
import { fmt, fmtSummary, summarize } from './lib/stats.js'
import { renderTable, type Table } from './lib/table.js'

const WORKLOADS = ['read-warm', 'read-cold', 'ls', 'copyup', 'two-mounts'] as const
type Workload = (typeof WORKLOADS)[number]
const SYSTEM_KEYS = ['kernel', 'fuse-overlayfs', 'strata', 'strata-dirs', 'plain'] as const
type SystemKey = (typeof SYSTEM_KEYS)[number]
const KERNEL = 'kernel overlayfs'
const FUSE_OVERLAYFS = 'fuse-overlayfs'
const STRATA = 'Strata'

interface Options {
  quick: boolean
  size: number
  files: number
  dirs: number
  reps: number
  only: Workload[]
  systems: SystemKey[]
  json: string
  dir: string
  keep: boolean
}

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..')

function options(): Options {
  const { values } = parseCli({
    options: {
      quick: { type: 'boolean', default: false },
      size: { type: 'string' },
      files: { type: 'string' },
      dirs: { type: 'string' },
      reps: { type: 'string' },
      only: { type: 'string' },
      systems: { type: 'string' },
      json: { type: 'string' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    console.log(`usage: node dist/bench/fuse.js [--quick] [--size 1G] [--files 20000] [--dirs 200] [--reps N]
  [--only ${WORKLOADS.join(',')}] [--systems ${SYSTEM_KEYS.join(',')}]
  [--json FILE] [--dir SCRATCH] [--keep (keep the scratch data for the next run)]`)
    process.exit(0)
  }
  const list = <T extends string>(v: string | undefined, all: readonly T[], what: string): T[] => {
    if (!v) return [...all]
    const got = v.split(',').filter(Boolean)
    for (const x of got) if (!all.includes(x as T)) fail(`unknown ${what} ${x}; one of ${all.join(', ')}`)
    return got as T[]
  }
  const int = (v: string | undefined, dflt: number, what: string): number => {
    const n = v === undefined ? dflt : Number(v)
    if (!Number.isInteger(n) || n <= 0) fail(`--${what} needs a positive integer`)
    return n
  }
  const quick = values.quick ?? false
  const size = values.size ? parseSize(values.size) : quick ? 256 * MiB : 1024 * MiB
  if (size % MiB !== 0 || size < 2 * MiB) fail('--size must be a whole number of MiB, at least 2M')
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  return {
    quick,
    size,
    files: int(values.files, quick ? 2000 : 20_000, 'files'),
    dirs: int(values.dirs, quick ? 20 : 200, 'dirs'),
    reps: int(values.reps, quick ? 3 : 5, 'reps'),
    only: list(values.only, WORKLOADS, 'workload'),
    systems: list(values.systems, SYSTEM_KEYS, 'system'),
    json: resolve(values.json ?? join(repoRoot, 'bench', 'results', `fuse-${stamp}.json`)),
    dir: resolve(values.dir ?? join(repoRoot, 'bench', 'results', 'tmp', 'fuse')),
    keep: values.keep ?? false,
  }
}

function fail(msg: string): never {
  console.error(msg)
  process.exit(2)
}

const log = (msg: string): void => { process.stderr.write(`${msg}\n`) }

interface Headline {
  target: string
  measured: string
  met: boolean | null
}

function workloadTable(r: WorkloadResult): Table {
  const k = median(r.samples[KERNEL])
  const rows = Object.entries(r.samples).map(([name, xs]) => {
    const m = median(xs)
    const ratio = Number.isFinite(k) && xs.length ? (r.higherIsBetter ? m / k : k / m) : NaN
    return [name, fmtSummary(summarize(xs)), Number.isFinite(ratio) ? `${fmt(ratio)}×` : '—']
  })
  return {
    title: r.title,
    headers: ['system', `${r.unit}, median (min–max)`, r.higherIsBetter ? 'vs kernel (higher is better)' : 'kernel time ÷ this'],
    rows,
    notes: r.notes,
  }
}

function headlines(results: Partial<Record<string, WorkloadResult>>, data: DataInfo): Headline[] {
  const out: Headline[] = []
  const ratio = (w: string | undefined, a: string, b: string, higher: boolean): number => {
    const r = w ? results[w] : undefined
    if (!r) return NaN
    const x = median(r.samples[a])
    const y = median(r.samples[b])
    return higher ? x / y : y / x
  }
  const add = (target: string, value: number, ok: (v: number) => boolean, what: string): void => {
    out.push({ target, measured: Number.isFinite(value) ? `${fmt(value)}× ${what}` : 'not measured', met: Number.isFinite(value) ? ok(value) : null })
  }
  add('warm sequential read ≥ 0.8× kernel overlayfs', ratio('read-warm', STRATA, KERNEL, true), (v) => v >= 0.8, 'kernel')
  add('cold sequential read ≥ fuse-overlayfs', ratio('read-cold', STRATA, FUSE_OVERLAYFS, true), (v) => v >= 1, 'fuse-overlayfs')
  const ls = ratio('ls', STRATA, KERNEL, true)
  add('ls -lR warm within 2× kernel overlayfs', ls, (v) => v <= 2, 'kernel\'s time')
  add(`4 KiB write into a ${data.bigBytes / MiB} MiB lower file ≥ 100× faster than the kernel's copy-up (warm)`, ratio('copyup-warm', STRATA, KERNEL, false), (v) => v >= 100, 'faster')
  add('same, cold', ratio('copyup-cold', STRATA, KERNEL, false), (v) => v >= 100, 'faster')
  return out
}

async function main(): Promise<void> {
  const opts = options()
  if (process.getuid?.() !== 0) fail('needs root: it mounts overlayfs and FUSE filesystems and drops caches')
  const started = new Date()
  console.log(`# FUSE bench — ${started.toISOString()}${opts.quick ? ' (quick)' : ''}`)
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${fmt(totalmem() / 1024 ** 3)} GiB, ${opts.reps} repetitions, systems alternated\n`)

  await mkdir(opts.dir, { recursive: true })
  const data = await ensureData(opts.dir, { bigBytes: opts.size, dirs: opts.dirs, filesPerDir: Math.ceil(opts.files / opts.dirs) }, log)
  const disk = deviceReadAhead(opts.dir)
  console.log(`kernel ${release()}; data on device ${disk.device}, read-ahead ${disk.readAheadKiB ?? '?'} KiB (cold reads depend on it)\n`)
  const run = join(opts.dir, `run-${process.pid}`)
  const env: SystemEnv = { data: data.path, scratch: run, log }
  const makers: Record<SystemKey, () => BenchSystem> = {
    kernel: () => kernelOverlay(env),
    'fuse-overlayfs': () => fuseOverlayfs(env),
    strata: () => strataStore(env),
    'strata-dirs': () => strataDirs(env),
    plain: () => plainDir(env),
  }
  const systems: BenchSystem[] = []
  const skipped: Record<string, string> = {}
  for (const key of opts.systems) {
    const s = makers[key]()
    const why = await s.unavailable()
    if (why) { skipped[s.name] = why; log(`skipping ${s.name}: ${why}`) } else systems.push(s)
  }
  for (const [name, why] of Object.entries(skipped)) console.log(`- ${name}: not measured (${why})`)

  const setup: Record<string, Record<string, number>> = {}
  const results: Partial<Record<string, WorkloadResult>> = {}
  let twoMounts: TwoMountsRow[] | undefined
  const errors: Record<string, string> = {}
  try {
    for (const s of systems) if (s.setup) { log(`setting up ${s.name}`); setup[s.name] = await s.setup() }
    for (const [name, v] of Object.entries(setup)) console.log(`- ${name} setup: ${Object.entries(v).map(([k, x]) => `${k} ${fmt(x)}`).join(', ')}`)
    console.log()
    const expected = (await sequentialRead(join(data.path, 'big'), { digest: true })).digest!
    const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
      log(`== ${name}`)
      try {
        await fn()
      } catch (err) {
        errors[name] = (err as Error).stack ?? String(err)
        console.log(`### ${name}\n\nFAILED: ${errors[name]}\n`)
        process.exitCode = 1
      }
    }
    const show = (key: string, r: WorkloadResult): void => { results[key] = r; console.log(renderTable(workloadTable(r))) }
    if (opts.only.includes('read-warm')) await step('read-warm', async () => show('read-warm', await readWorkload(systems, data, opts.reps, false, expected)))
    if (opts.only.includes('read-cold')) await step('read-cold', async () => show('read-cold', await readWorkload(systems, data, opts.reps, true, expected)))
    if (opts.only.includes('ls')) await step('ls', async () => show('ls', await lsWorkload(systems, data, opts.reps)))
    if (opts.only.includes('copyup')) await step('copyup', async () => {
      const [warm, cold] = await copyUpWorkload(systems, data, opts.reps)
      show('copyup-warm', warm)
      show('copyup-cold', cold)
    })
    if (opts.only.includes('two-mounts')) await step('two-mounts', async () => {
      const r = await twoMountsWorkload(systems, data)
      twoMounts = r.rows
      console.log(renderTable(r.table))
    })
  } finally {
    for (const s of systems) await s.teardown?.().catch((err: Error) => log(`teardown of ${s.name}: ${err.message}`))
    await rm(run, { recursive: true, force: true }).catch(() => {})
    if (!opts.keep) await rm(opts.dir, { recursive: true, force: true }).catch(() => {})
  }

  const heads = headlines(results, data)
  console.log(renderTable({
    title: 'Targets (Strata = a committed snapshot mounted from the store)',
    headers: ['target', 'measured', 'met'],
    rows: heads.map((h) => [h.target, h.measured, h.met === null ? '—' : h.met ? 'yes' : 'NO']),
  }))

  await mkdir(dirname(opts.json), { recursive: true })
  await writeFile(opts.json, JSON.stringify({
    started: started.toISOString(),
    node: process.version,
    kernel: release(),
    disk,
    cpus: cpus().length,
    options: opts,
    data: { bigBytes: data.bigBytes, dirs: data.dirs, filesPerDir: data.filesPerDir, writeSeconds: data.writeSeconds },
    skipped,
    setup,
    results,
    twoMounts,
    headlines: heads,
    errors,
  }, null, 2))
  log(`raw results written to ${opts.json}`)
}

await main()
