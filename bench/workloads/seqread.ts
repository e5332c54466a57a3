/**
 * Workload 2: sequential read of the big lower file in 1 MiB reads, cold (caches dropped, a fresh
 * mount or a freshly opened store every time) and warm (everything mounted, read once before).
 */
import { join } from 'node:path'
import { sequentialRead, type ReadResult } from '../lib/fileio.js'
import { dropCaches } from '../lib/proc.js'
import { MiB } from '../lib/storage.js'
import { apiSequentialRead, engineStackOr, type EngineStack } from '../suite/engine.js'
import { Rows, alternate, errorText, mountAll, rowNames, runnableStacks, table, unmountAll } from '../suite/rows.js'
import { SYSTEM, type StackMount, type SystemName, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'

interface Reader {
  name: SystemName
  read(digest: boolean): Promise<ReadResult>
}

const mbps = (r: ReadResult): number => r.bytes / 1e6 / (r.ms / 1000)

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const lowers = [ctx.data.path]
  const expected = (await sequentialRead(join(ctx.data.path, 'big'), { digest: true })).digest
  const names = rowNames(ctx, true)
  const warm = new Rows(names)
  const cold = new Rows(names)
  const stacks = runnableStacks(ctx, 1, false, [warm, cold])
  const engine = await engineStackOr(ctx, lowers, [warm, cold])
  try {
    const apiRead = (digest: boolean): Promise<ReadResult> => apiSequentialRead(engine!.store.fs(engine!.snap), '/big', { digest })

    ctx.log('seqread: warm')
    const mounts = await mountAll(stacks, lowers, { writable: false }, [warm, cold])
    try {
      const readers: Reader[] = [...mounts].map(([name, m]) => ({ name, read: (digest) => sequentialRead(join(m.root, 'big'), { digest }) }))
      if (engine) readers.unshift({ name: SYSTEM.engine, read: apiRead })
      // One untimed read each: checks the content (a system that reads wrong bytes is failed in
      // both tables) and fills the caches the warm case is about.
      for (const r of readers) {
        try {
          const got = await r.read(true)
          if (got.digest !== expected || got.bytes !== ctx.data.bigBytes) throw new Error(`read ${got.bytes} bytes with xxh64 ${got.digest}; the file has ${ctx.data.bigBytes} bytes, xxh64 ${expected}`)
        } catch (err) {
          for (const t of [warm, cold]) t.fail(r.name, `${r.name}: ${errorText(err)}`)
        }
      }
      await alternate(readers, ctx.reps, warm, async (r) => mbps(await r.read(false)))
    } finally {
      await unmountAll(mounts, ctx.log)
    }

    ctx.log('seqread: cold')
    // A fresh mount for every read: a daemon's own cache (Strata's chunk cache) must not survive
    // the drop of the kernel's caches either. Mounting is not timed.
    const coldReaders: Reader[] = stacks.map((s) => ({
      name: s.name,
      read: async () => {
        const m: StackMount = await s.mount(lowers, { writable: false })
        try {
          dropCaches()
          return await sequentialRead(join(m.root, 'big'))
        } finally {
          await m.unmount()
        }
      },
    }))
    if (engine) coldReaders.unshift({ name: SYSTEM.engine, read: async () => { await engine!.reopen(dropCaches); return apiRead(false) } })
    await alternate(coldReaders, ctx.reps, cold, async (r) => mbps(await r.read(false)))
  } finally {
    await engine?.close()
  }

  const mib = ctx.data.bigBytes / MiB
  const params = { 'file MiB': mib, 'read size KiB': 1024 }
  const common = [
    `The ${mib} MiB file of pseudo-random bytes read whole with 1 MiB read(2) calls (the engine: FileHandle.read through the API); open to close is timed.`,
    'Every system read the file once, untimed, before the warm samples, and its xxh64 matched the file\'s.',
  ]
  return [
    table({ id: 'seqread-cold', workload: 2, title: `Sequential read of a ${mib} MiB lower file, cold`, unit: 'MB/s', higherIsBetter: true, rows: cold, params, notes: [...common, 'Cold: each read on a fresh mount (FUSE daemons started anew) after dropping the page cache, dentries and inodes; the engine closes its store, drops the caches and opens it again.'] }),
    table({ id: 'seqread-warm', workload: 2, title: `Sequential read of a ${mib} MiB lower file, warm`, unit: 'MB/s', higherIsBetter: true, rows: warm, params, notes: [...common, 'Warm: all systems mounted at once and read in turn; a FUSE mount that keeps its page cache answers without asking its daemon. The engine has no page cache: its chunk cache (256 MiB) holds part of the file.'] }),
  ]
}

export const seqreadWorkload: Workload = { name: 'seqread', number: 2, title: 'Sequential read of a big file', run }
