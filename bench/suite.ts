/**
 * The benchmark suite: every workload of bench/workloads on every system it applies to (Strata's
 * engine, its FUSE mounts over store and directory layers, kernel overlayfs, fuse-overlayfs, the
 * plain dir; cp -a, tar and ostree for snapshots), systems alternated within every repetition.
 *
 *   npm run bench -- [--quick] [--only copyup,seqread] [--reps N] [--keep] [--data DIR] [--host-fs]
 *
 * The data and what the systems write go to an ext4 made for the run (bench/suite/scratchfs.ts).
 * Needs root (overlayfs and FUSE mounts, drop_caches). Writes bench/results/suite-<time>.json
 * (bench/suite/types.ts: SuiteResult); a full run also writes the report (bench/report.ts).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ensureData } from './lib/fusedata.js'
import { repoRoot } from './lib/fusesystems.js'
import { MiB } from './lib/storage.js'
import { fmt } from './lib/stats.js'
import { dropEngineStores, setEngineRoot } from './suite/engine.js'
import { ensureTools, machineInfo, versions } from './suite/machine.js'
import { renderResult } from './suite/print.js'
import { hostScratch, scratchFsIn } from './suite/scratchfs.js'
import { stackSystems } from './suite/systems.js'
import type { StackSystem, SuiteResult, SystemName, WorkloadContext } from './suite/types.js'
import { WORKLOADS } from './workloads/index.js'

const USAGE = `usage: npm run bench -- [options]   (as root: sudo npm run bench)
  --quick          reduced sizes and 3 repetitions (the whole suite in minutes)
  --only a,b       only these workloads: ${WORKLOADS.map((w) => w.name).join(', ')}
  --reps N         repetitions per system (default 5, --quick 3)
  --keep           keep the generated data (and the ext4 holding it) for the next run
  --data DIR       where data and scratch go (default /var/tmp/strata-bench)
  --host-fs        use the data dir's own file system, not an ext4 made for the run in it`

interface Options {
  quick: boolean
  only?: string[]
  reps: number
  keep: boolean
  data: string
  hostFs: boolean
}

function fail(msg: string): never {
  console.error(`${msg}\n${USAGE}`)
  process.exit(2)
}

function options(): Options {
  let values
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        reps: { type: 'string' },
        keep: { type: 'boolean', default: false },
        data: { type: 'string' },
        'host-fs': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values
  } catch (err) {
    fail((err as Error).message)
  }
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const quick = values.quick ?? false
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean)
  for (const name of only ?? []) if (!WORKLOADS.some((w) => w.name === name)) fail(`unknown workload ${name}`)
  const reps = values.reps === undefined ? (quick ? 3 : 5) : Number(values.reps)
  if (!Number.isInteger(reps) || reps <= 0) fail('--reps needs a positive integer')
  return { quick, only, reps, keep: values.keep ?? false, data: resolve(values.data ?? '/var/tmp/strata-bench'), hostFs: values['host-fs'] ?? false }
}

const log = (msg: string): void => { process.stderr.write(`${msg}\n`) }

async function main(): Promise<void> {
  const opts = options()
  if (process.getuid?.() !== 0) {
    console.error('strata bench: needs root (the suite mounts kernel overlayfs and FUSE and drops caches); run it as root, e.g. sudo npm run bench')
    process.exit(1)
  }
  const started = new Date()
  const selected = WORKLOADS.filter((w) => !opts.only || opts.only.includes(w.name))
  console.log(`# Strata benchmark suite — ${started.toISOString()}${opts.quick ? ' (quick)' : ''}, ${opts.reps} repetitions, systems alternated`)
  const unavailable: Partial<Record<SystemName, string>> = await ensureTools(console.log)

  await mkdir(opts.data, { recursive: true })
  const scratchFs = opts.hostFs ? hostScratch(opts.data) : await scratchFsIn(opts.data, { keep: opts.keep })
  console.log(`data and writes on: ${scratchFs.describe}`)
  // Quick: a quarter of the file and of the tree, so every workload fits in a few minutes.
  const spec = opts.quick ? { bigBytes: 256 * MiB, dirs: 50, filesPerDir: 100 } : { bigBytes: 1024 * MiB, dirs: 200, filesPerDir: 100 }
  const data = await ensureData(scratchFs.path, spec, log).catch(async (err: unknown) => {
    // the run's cleanup (below) is not set up yet
    await scratchFs.close().catch((e: Error) => log(`unmounting the scratch file system: ${e.message}`))
    throw err
  })
  const machine = machineInfo(data.path)
  console.log(`${machine.cpus} × ${machine.cpuModel}, ${machine.memGiB} GiB, kernel ${machine.kernel}, node ${machine.node}; data on ${machine.disk.device} (read-ahead ${machine.disk.readAheadKiB ?? '?'} KiB)`)
  console.log(`data: ${spec.bigBytes / MiB} MiB file, ${spec.dirs * spec.filesPerDir} files in ${spec.dirs} dirs${data.writeSeconds ? ` (written in ${fmt(data.writeSeconds)} s)` : ' (reused)'}`)

  const run = join(scratchFs.path, `run-${process.pid}`)
  await mkdir(run)
  setEngineRoot(join(run, 'engine'))
  const stacks: StackSystem[] = stackSystems({ scratch: join(run, 'systems'), log })
  for (const s of stacks) {
    const why = unavailable[s.name] ?? (await s.unavailable())
    if (why) {
      unavailable[s.name] = why
      console.log(`${s.name}: not measured (${why})`)
    }
  }

  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const jsonPath = join(repoRoot(), 'bench', 'results', `suite-${stamp}.json`)
  const result: SuiteResult = {
    started: started.toISOString(),
    finished: '',
    command: [process.env.npm_lifecycle_event === 'bench' ? 'npm run bench --' : 'node dist/bench/suite.js', ...process.argv.slice(2)].join(' '),
    quick: opts.quick,
    reps: opts.reps,
    machine: { ...machine, scratch: scratchFs.describe },
    versions: await versions(),
    unavailable,
    tables: [],
    errors: {},
  }
  const save = async (): Promise<void> => {
    result.finished = new Date().toISOString()
    await mkdir(join(repoRoot(), 'bench', 'results'), { recursive: true })
    await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n')
  }

  // Whatever ends the run (the end, an error, Ctrl-C) unmounts what is left and removes the scratch.
  let cleaning: Promise<void> | undefined
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    for (const s of stacks) await s.close().catch((err: Error) => log(`closing ${s.name}: ${err.message}`))
    await dropEngineStores()
    // an image that is not kept goes whole with what it holds: nothing in it is removed first
    if (opts.hostFs || opts.keep) await rm(run, { recursive: true, force: true }).catch(() => {})
    if (opts.hostFs && !opts.keep) for (const p of [data.path, join(scratchFs.path, 'data.json')]) await rm(p, { recursive: true, force: true }).catch(() => {})
    await scratchFs.close().catch((err: Error) => log(`unmounting the scratch file system: ${err.message}`))
  })())
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: unmounting and removing the scratch data`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    for (const w of selected) {
      const scratch = join(run, `w-${w.name}`)
      await mkdir(scratch, { recursive: true })
      const ctx: WorkloadContext = { quick: opts.quick, reps: opts.reps, scratch, data, unavailable, stacks, log }
      const t0 = Date.now()
      console.log(`\n## ${w.number}. ${w.title}`)
      try {
        const tables = await w.run(ctx)
        result.tables.push(...tables)
        for (const t of tables) console.log(renderResult(t))
      } catch (err) {
        result.errors[w.name] = (err as Error).stack ?? String(err)
        console.log(`FAILED: ${(err as Error).message}`)
        process.exitCode = 1
      } finally {
        await rm(scratch, { recursive: true, force: true }).catch(() => {})
      }
      log(`${w.name}: ${fmt((Date.now() - t0) / 1000)} s`)
      await save()
    }
  } finally {
    await cleanup()
  }
  await save()
  console.log(`\nresults: ${jsonPath} (${fmt((Date.now() - started.getTime()) / 1000)} s)`)
  if (!opts.quick && !opts.only) await report(jsonPath)
}

/** Writes docs/benchmarks.md from the results, when this checkout has the report. */
async function report(jsonPath: string): Promise<void> {
  const path = new URL('./report.js', import.meta.url).href
  let mod: { writeReport?: (p: string) => Promise<void> }
  try {
    mod = (await import(path)) as typeof mod
  } catch (err) {
    console.log(`no report written (bench/report.ts could not be loaded: ${(err as Error).message})`)
    return
  }
  if (typeof mod.writeReport !== 'function') {
    console.log('no report written (bench/report.ts has no writeReport)')
    return
  }
  await mod.writeReport(jsonPath)
}

await main()
