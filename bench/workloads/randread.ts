/**
 * Workload 3: 4 KiB reads at pseudo-random 4 KiB-aligned offsets of the big lower file, as a
 * database or an index lookup would do; cold (caches dropped, fresh mount) and warm.
 */
import { join } from 'node:path'
import { randomReads, readAt } from '../lib/fileio.js'
import { dropCaches } from '../lib/proc.js'
import { Prng } from '../lib/random.js'
import { KiB, MiB } from '../lib/storage.js'
import { apiRandomReads, apiReadAt, engineStackOr, type EngineStack } from '../suite/engine.js'
import { Rows, alternate, errorText, mountAll, rowNames, runnableStacks, table, unmountAll, type Sample } from '../suite/rows.js'
import { SYSTEM, type SystemName, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'

const BLOCK = 4 * KiB
/** Reads checked against the plain file before any timing. */
const CHECKED = 16

interface Reader {
  name: SystemName
  /** The time of all reads, ms. */
  reads(): Promise<number>
  /** Bytes at an offset, for the content check (warm readers only). */
  at?(offset: number): Promise<Buffer>
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const lowers = [ctx.data.path]
  const count = ctx.quick ? 5000 : 20_000
  const rng = new Prng(33)
  const blocks = ctx.data.bigBytes / BLOCK
  const offsets = Array.from({ length: count }, () => rng.int(0, blocks - 1) * BLOCK)
  const plain = join(ctx.data.path, 'big')
  const expected = offsets.slice(0, CHECKED).map((off) => readAt(plain, off, BLOCK))
  const sample = (ms: number): Sample => ({ value: count / (ms / 1000), extra: { 'µs per read': (ms * 1000) / count } })

  const names = rowNames(ctx, true)
  const warm = new Rows(names)
  const cold = new Rows(names)
  const stacks = runnableStacks(ctx, 1, false, [warm, cold])
  const engine = await engineStackOr(ctx, lowers, [warm, cold])
  const engineReader = (e: EngineStack): Reader => ({
    name: SYSTEM.engine,
    reads: () => apiRandomReads(e.store.fs(e.snap), '/big', offsets, BLOCK),
    at: (off) => apiReadAt(e.store.fs(e.snap), '/big', off, BLOCK),
  })
  try {
    ctx.log(`randread: warm (${count} reads)`)
    const mounts = await mountAll(stacks, lowers, { writable: false }, [warm, cold])
    try {
      const readers: Reader[] = [...mounts].map(([name, m]) => {
        const file = join(m.root, 'big')
        return { name, reads: async () => randomReads(file, offsets, BLOCK), at: async (off: number) => readAt(file, off, BLOCK) }
      })
      if (engine) readers.unshift(engineReader(engine))
      for (const r of readers) {
        try {
          for (let i = 0; i < CHECKED; i++) {
            if (!(await r.at!(offsets[i])).equals(expected[i])) throw new Error(`${r.name}: the 4 KiB at ${offsets[i]} differ from the lower file's`)
          }
          // The untimed pass the warm case starts from.
          await r.reads()
        } catch (err) {
          for (const t of [warm, cold]) t.fail(r.name, errorText(err))
        }
      }
      await alternate(readers, ctx.reps, warm, async (r) => sample(await r.reads()))
    } finally {
      await unmountAll(mounts, ctx.log)
    }

    ctx.log('randread: cold')
    const coldReaders: Reader[] = stacks.map((s) => ({
      name: s.name,
      reads: async () => {
        const m = await s.mount(lowers, { writable: false })
        try {
          dropCaches()
          return randomReads(join(m.root, 'big'), offsets, BLOCK)
        } finally {
          await m.unmount()
        }
      },
    }))
    if (engine) {
      const e = engine
      coldReaders.unshift({ name: SYSTEM.engine, reads: async () => { await e.reopen(dropCaches); return apiRandomReads(e.store.fs(e.snap), '/big', offsets, BLOCK) } })
    }
    await alternate(coldReaders, ctx.reps, cold, async (r) => sample(await r.reads()))
  } finally {
    await engine?.close()
  }

  const mib = ctx.data.bigBytes / MiB
  const params = { 'file MiB': mib, reads: count, 'read size KiB': BLOCK / KiB }
  const common = [
    `${count} pread(2) calls of 4 KiB at pseudo-random 4 KiB-aligned offsets (the same offsets for every system, seed 33) over the ${mib} MiB file, one file descriptor; open to close is timed. The engine: FileHandle.read through the API.`,
    `Before any timing, the first ${CHECKED} reads of every system were compared with the plain file's bytes.`,
  ]
  return [
    table({ id: 'randread-cold', workload: 3, title: `Random 4 KiB reads over a ${mib} MiB lower file, cold`, unit: 'reads/s', higherIsBetter: true, rows: cold, params, notes: [...common, 'Cold: each pass on a fresh mount after dropping the page cache, dentries and inodes (the engine reopens its store after the drop); read-ahead still fetches more than each 4 KiB.'] }),
    table({ id: 'randread-warm', workload: 3, title: `Random 4 KiB reads over a ${mib} MiB lower file, warm`, unit: 'reads/s', higherIsBetter: true, rows: warm, params, notes: [...common, 'Warm: all systems mounted at once, after one untimed pass of the same reads each.'] }),
  ]
}

export const randreadWorkload: Workload = { name: 'randread', number: 3, title: 'Random 4 KiB reads', run }
