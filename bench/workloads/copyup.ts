/**
 * Workload 1: a 4 KiB write into the middle of the big lower file (open O_RDWR, pwrite, fsync,
 * close) through a writable mount over a fresh upper. The kernel and fuse-overlayfs copy the
 * whole file up first; Strata's copy-up is a metadata write plus the chunk the write touches.
 */
import { join } from 'node:path'
import { pwriteSynced, readAt, sequentialRead } from '../lib/fileio.js'
import { dropCaches } from '../lib/proc.js'
import { Prng } from '../lib/random.js'
import { KiB, MiB } from '../lib/storage.js'
import { apiPwriteSynced, apiReadAt, apiSequentialRead, openEngineStack, type EngineStack } from '../suite/engine.js'
import { Rows, alternate, rowNames, runnableStacks, table, type Sample } from '../suite/rows.js'
import { SYSTEM, type StackSystem, type SystemName, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'

const WRITE = 4 * KiB

interface Writer {
  name: SystemName
  sample(warm: boolean, patch: Buffer): Promise<Sample>
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const lowers = [ctx.data.path]
  const offset = Math.floor(ctx.data.bigBytes / 2 / WRITE) * WRITE
  // The bytes around the write, which must not change.
  const edges = readAt(join(ctx.data.path, 'big'), offset - 1, WRITE + 2)
  const check = (name: string, got: Buffer, patch: Buffer): void => {
    const want = Buffer.concat([edges.subarray(0, 1), patch, edges.subarray(WRITE + 1)])
    if (!got.equals(want)) throw new Error(`${name}: after the write, the ${WRITE + 2} bytes at ${offset - 1} are not the 4 KiB written between the file's old neighbours`)
  }
  const names = rowNames(ctx, true)
  const warm = new Rows(names)
  const cold = new Rows(names)
  const writers: Writer[] = []
  let engine: EngineStack | undefined
  try {
    engine = await openEngineStack(ctx.scratch, lowers, ctx.log)
    writers.push(engineWriter(engine, offset, check))
  } catch (err) {
    for (const t of [warm, cold]) t.fail(SYSTEM.engine, err)
  }
  for (const s of runnableStacks(ctx, 1, true, [warm, cold])) writers.push(mountWriter(s, lowers, offset, check))
  try {
    let n = 0
    for (const [isWarm, rows] of [[true, warm], [false, cold]] as const) {
      ctx.log(`copyup: ${isWarm ? 'warm' : 'cold'}`)
      // A new patch every time: the same bytes would dedup against an earlier write in the store.
      await alternate(writers, ctx.reps, rows, (w) => w.sample(isWarm, new Prng(1000 + ++n).bytes(WRITE)))
    }
  } finally {
    await engine?.close()
  }

  const mib = ctx.data.bigBytes / MiB
  const params = { 'file MiB': mib, 'write bytes': WRITE, 'write offset': offset }
  const common = [
    `Each sample on a fresh writable mount over the ${mib} MiB file (a fresh upper dir, or a new active snapshot for Strata's store), unmounted and deleted after; mounting is not timed.`,
    'Timed: open(O_RDWR), a 4 KiB pwrite in the middle of the file, fsync, close (extras: each step, ms). The bytes written and their neighbours are read back after.',
    "'bytes added': growth of the upper dir on disk (du), or of the whole store dir for Strata's store rows (LevelDB's log included).",
    'Engine row: the same open r+ / write / sync / close through the API on a new active snapshot (store.prepare, not timed).',
  ]
  return [
    table({ id: 'copyup-warm', workload: 1, title: `4 KiB write into the middle of a ${mib} MiB lower file, warm`, unit: 'ms', higherIsBetter: false, rows: warm, params, notes: [...common, 'Warm: the whole file was read through the mount (the API for the engine) just before the write, as after a step that used it.'] }),
    table({ id: 'copyup-cold', workload: 1, title: `4 KiB write into the middle of a ${mib} MiB lower file, cold`, unit: 'ms', higherIsBetter: false, rows: cold, params, notes: [...common, 'Cold: page cache, dentries and inodes dropped after mounting, before the write; the engine reopens its store after the drop.'] }),
  ]
}

function mountWriter(s: StackSystem, lowers: string[], offset: number, check: (name: string, got: Buffer, patch: Buffer) => void): Writer {
  return {
    name: s.name,
    async sample(warm, patch) {
      const m = await s.mount(lowers, { writable: true })
      try {
        const file = join(m.root, 'big')
        if (warm) await sequentialRead(file)
        else dropCaches()
        const t = pwriteSynced(file, patch, offset)
        check(s.name, readAt(file, offset - 1, WRITE + 2), patch)
        return { value: t.ms, extra: { 'bytes added': await m.growthBytes(), 'open ms': t.openMs, 'write ms': t.writeMs, 'fsync ms': t.fsyncMs, 'close ms': t.closeMs } }
      } finally {
        await m.unmount()
        await m.discard()
      }
    },
  }
}

function engineWriter(engine: EngineStack, offset: number, check: (name: string, got: Buffer, patch: Buffer) => void): Writer {
  let n = 0
  return {
    name: SYSTEM.engine,
    async sample(warm, patch) {
      const key = `copyup-${++n}`
      if (!warm) await engine.reopen(dropCaches)
      await engine.store.prepare(key, engine.snap)
      try {
        const fs = engine.store.fs(key)
        if (warm) await apiSequentialRead(fs, '/big')
        const before = await engine.diskBytes()
        const t = await apiPwriteSynced(fs, '/big', patch, offset)
        check(SYSTEM.engine, await apiReadAt(fs, '/big', offset - 1, WRITE + 2), patch)
        const added = (await engine.diskBytes()) - before
        return { value: t.ms, extra: { 'bytes added': added, 'open ms': t.openMs, 'write ms': t.writeMs, 'fsync ms': t.syncMs, 'close ms': t.closeMs } }
      } finally {
        // A leftover active snapshot changes no later sample (growth is taken per sample).
        await engine.store.remove(key).catch(() => {})
      }
    },
  }
}

export const copyupWorkload: Workload = { name: 'copyup', number: 1, title: 'Copy-up: 4 KiB write into a big lower file', run }
