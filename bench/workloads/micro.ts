/** Workload 9: micro-benchmarks of engine calls with Benchmark.js. */
import Benchmark from 'benchmark'
import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import { SYSTEM, type SystemRow, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'
import { fmt, timeMs } from '../lib/stats.js'
import { BIG_BYTES, STACK_DEPTH, buildFixture, chunkReadCases, commitCase, copyUpCase, lookupCase, type MicroCase } from './microcases.js'
import { MiB } from '../lib/storage.js'

interface Timing {
  /** Seconds Benchmark.js aims each cycle at, and the most it spends on a case (it takes at least 5 cycles, even past maxTime). */
  minTime: number
  maxTime: number
}

/** Warm-up: chunks of this many untimed operations, until one chunk runs within 25% of the one before. */
const WARMUP_CHUNK = 50
const WARMUP_MAX_CHUNKS = 12
/** Fewest cycles Benchmark.js takes (its minSamples): a pool must hold them all. */
const MIN_CYCLES = 5

interface Measured {
  samples: number[]
  rme: number
  meanSeconds: number
  cycles: number
}

/**
 * Runs `op` under Benchmark.js's deferred mode: each operation awaits the call's promise.
 * `left` tells how many more operations the prepared pool allows: when fewer than two cycles'
 * worth remain, maxTime drops to 0 so that Benchmark.js ends after the cycle it is in (it reads
 * maxTime after every cycle), instead of running out.
 */
function benchmark(name: string, op: () => Promise<void>, t: Timing, left: () => number = () => Infinity): Promise<Measured> {
  return new Promise((resolve, reject) => {
    let failure: unknown
    const bench: Benchmark = new Benchmark(name, {
      defer: true,
      async: true,
      minSamples: MIN_CYCLES,
      minTime: t.minTime,
      maxTime: t.maxTime,
      fn: (d: Benchmark.Deferred) => {
        op().then(() => d.resolve(), (err: unknown) => { failure ??= err; bench.abort(); d.resolve() })
      },
      // @types/benchmark leaves out the instance's copy of its options, which Benchmark.js reads.
      onCycle: () => { if (left() < 2 * bench.count) (bench as Benchmark & { maxTime: number }).maxTime = 0 },
      onAbort: () => reject(failure ?? new Error(`${name}: aborted`)),
      onError: () => reject(failure ?? bench.error),
      onComplete: () => {
        if (failure || bench.error) return reject(failure ?? bench.error)
        // stats.sample holds one mean period (seconds per operation) per cycle.
        resolve({ samples: (bench.stats.sample as number[]).map((p) => 1 / p), rme: bench.stats.rme, meanSeconds: bench.stats.mean, cycles: bench.stats.sample.length })
      },
    })
    bench.run()
  })
}

/**
 * Untimed operations until their pace settles (the JIT, the caches, LevelDB's compaction after a
 * pool was prepared: the first hundreds of copy-ups can run ten times slower than the rest).
 * Returns the fastest chunk's seconds per operation.
 */
async function warmUp(c: MicroCase): Promise<number> {
  let last = Infinity
  let fastest = Infinity
  for (let k = 0; k < WARMUP_MAX_CHUNKS; k++) {
    const period = (await timeMs(async () => { for (let i = 0; i < WARMUP_CHUNK; i++) await c.op() })) / 1000 / WARMUP_CHUNK
    fastest = Math.min(fastest, period)
    if (Number.isFinite(last) && Math.abs(period - last) <= 0.25 * last) break
    last = period
  }
  return fastest
}

async function measureCase(c: MicroCase, t: Timing, poolCap: number, log: (m: string) => void): Promise<Measured & { pool?: number; minTime: number }> {
  let timing = t
  let pool: number | undefined
  if (c.replenish) {
    // Preparing a snapshot (synced) costs more than the operation: the pool is capped, and cycles
    // are shortened so that Benchmark.js's five take a quarter of what is left of it at the warm-up's
    // fastest pace (it sizes every cycle by time, not by count): they fit even at four times that pace.
    pool = poolCap
    const prepMs = await timeMs(() => c.replenish!(poolCap))
    const fastest = await warmUp(c)
    timing = { ...t, minTime: Math.min(t.minTime, (c.left() / 4 / MIN_CYCLES) * fastest) }
    log(`  ${c.id}: prepared ${pool} snapshots in ${fmt(prepMs / 1000)} s; ${pool - c.left()} used to warm up (fastest ${fmt(fastest * 1e3)} ms per operation)`)
  } else {
    await warmUp(c)
  }
  await c.check()
  // An operation must never prepare its own snapshot on the clock: the case fails instead.
  const guarded = async (): Promise<void> => {
    if (c.left() === 0) throw new Error(`${c.id}: the ${pool} prepared snapshots ran out before Benchmark.js took ${MIN_CYCLES} cycles`)
    await c.op()
  }
  const m = await benchmark(c.id, guarded, timing, () => c.left())
  await c.check()
  log(`  ${c.id}: ${fmt(1 / m.meanSeconds)} ops/s ±${fmt(m.rme)}% (${m.cycles} cycles)`)
  return { ...m, pool, minTime: timing.minTime }
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const t: Timing = ctx.quick ? { minTime: 0.05, maxTime: 1 } : { minTime: 0.1, maxTime: 5 }
  const poolCap = ctx.quick ? 2500 : 6000
  const path = join(ctx.scratch, 'micro-store')
  ctx.log(`micro: building a ${STACK_DEPTH}-layer stack and a ${BIG_BYTES / MiB} MiB file`)
  const store = await buildFixture(path)
  try {
    const floor = await benchmark('empty', async () => {}, t)
    ctx.log(`  harness floor: ${fmt(1 / floor.meanSeconds)} ops/s`)
    const cases = [lookupCase(store), ...chunkReadCases(store), copyUpCase(store), commitCase(store)]
    const tables: TableResult[] = []
    for (const c of cases) {
      let row: SystemRow
      let minTime = t.minTime
      try {
        const m = await measureCase(c, t, poolCap, ctx.log)
        minTime = m.minTime
        row = { system: SYSTEM.engine, samples: m.samples, extra: { 'rme %': [m.rme], 'mean µs per op': [m.meanSeconds * 1e6], cycles: [m.cycles], ...(m.pool ? { 'prepared snapshots': [m.pool] } : {}) } }
      } catch (err) {
        row = { system: SYSTEM.engine, samples: [], failed: (err as Error).message }
      }
      tables.push({
        id: c.id, workload: 9, title: c.title, unit: 'ops/s', higherIsBetter: true, baseline: SYSTEM.engine, rows: [row],
        notes: [
          ...c.notes,
          ...(c.replenish ? ['Preparing a snapshot (synced) costs more than the operation, so the pool of prepared snapshots is capped: cycles are shortened (minTime below) and Benchmark.js stops once fewer than two cycles\' worth of prepared snapshots remain, possibly before maxTime.'] : []),
          'Benchmark.js in deferred mode (each operation awaits the call), in-process, one run per case (the suite\'s repetitions do not apply); one sample per Benchmark.js cycle: that cycle\'s operations per second. extra: relative margin of error (rme, 95%) and mean time per operation.',
          `The harness alone (an empty async operation) runs at ${fmt(1 / floor.meanSeconds)} ops/s here: no call can show more.`,
          'There is no kernel equivalent of these calls: the baseline is the engine itself.',
        ],
        params: { 'minTime s': Number(minTime.toPrecision(3)), 'maxTime s': t.maxTime, 'stack layers': STACK_DEPTH, 'big file MiB': BIG_BYTES / MiB, 'harness floor ops/s': Math.round(1 / floor.meanSeconds) },
      })
    }
    return tables
  } finally {
    await store.close()
    await rm(path, { recursive: true, force: true })
  }
}

export const microWorkload: Workload = { name: 'micro', number: 9, title: 'Micro-benchmarks of engine calls', run }
