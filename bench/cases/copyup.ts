import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { writeFileInPieces } from '../lib/bigfile.js'
import { scratchDir } from '../lib/scratch.js'
import { chunkKeys, layerRecords, newChunks, settleStore, KiB, MiB } from '../lib/storage.js'
import { Prng } from '../lib/random.js'
import { fmt, fmtIqr, summarize, timeMs } from '../lib/stats.js'

interface Sample {
  cold: boolean
  openMs: number
  writeMs: number
  syncMs: number
  closeMs: number
  totalMs: number
  newChunkKeys: number
  newChunkBytes: number
  layerRecordBytes: number
  usageBytes: number
}

const WRITE = 4 * KiB
/** A copy-up takes milliseconds, so each repetition takes several samples of each kind. */
const SAMPLES_PER_REP = 3

/**
 * A small write into the middle of a huge lower file (kernel overlayfs copies the whole file up).
 * Here a copy-up is a metadata write, so the cost should be one chunk plus one page of refs.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const fileSize = ctx.args.quick ? 256 * MiB : 1024 * MiB
  const offset = fileSize / 2
  const scratch = await scratchDir(ctx.args.dir, 'copyup')
  let store = await Store.open({ path: scratch.path })
  try {
    ctx.log(`copy-up: writing a ${fileSize / MiB} MiB file through the API`)
    const ingestMs = await writeBase(store, fileSize)
    await store.close()
    await settleStore(scratch.path)
    store = await Store.open({ path: scratch.path })

    const samples: Sample[] = []
    // Alternate a cold engine (store reopened: empty chunk and index caches) and a warm one.
    for (let i = 0; i < ctx.reps * 2 * SAMPLES_PER_REP; i++) {
      const cold = i % 2 === 0
      if (cold) {
        await store.close()
        store = await Store.open({ path: scratch.path })
      }
      const key = `child${i}`
      // A different patch in every child: the same bytes would dedup against the previous child's chunk.
      const patch = new Prng(100 + i).bytes(WRITE)
      await store.prepare(key, 'base')
      const before = await chunkKeys(store)
      const fs = store.fs(key)
      const t: Partial<Sample> = { cold }
      const t0 = process.hrtime.bigint()
      let h!: Awaited<ReturnType<typeof fs.open>>
      t.openMs = await timeMs(async () => { h = await fs.open('/big', 'r+') })
      t.writeMs = await timeMs(() => h.write(patch, 0, WRITE, offset))
      t.syncMs = await timeMs(() => h.sync())
      t.closeMs = await timeMs(() => h.close())
      t.totalMs = Number(process.hrtime.bigint() - t0) / 1e6

      const grown = await newChunks(store, before)
      const records = await layerRecords(store, key)
      samples.push({ ...(t as Sample), newChunkKeys: grown.keys, newChunkBytes: grown.valueBytes, layerRecordBytes: records.bytes, usageBytes: (await store.usage(key)).size })
      await checkContent(store, key, patch, offset)
    }

    const row = (label: string, s: Sample[]): string[] => [
      label,
      fmtIqr(summarize(s.map((x) => x.totalMs))),
      fmt(summarize(s.map((x) => x.totalMs)).max),
      fmt(summarize(s.map((x) => x.openMs)).median),
      fmt(summarize(s.map((x) => x.writeMs)).median),
      fmt(summarize(s.map((x) => x.syncMs)).median),
      fmt(summarize(s.map((x) => x.closeMs)).median),
    ]
    const g = samples[0]
    return {
      tables: [
        {
          title: `Copy-up: 4 KiB write at ${offset / MiB} MiB into a ${fileSize / MiB} MiB lower file (open r+ / write / sync / close), ms`,
          headers: ['engine caches', 'total, median [IQR]', 'max', 'open', 'write', 'sync', 'close'],
          rows: [row('cold (store reopened)', samples.filter((s) => s.cold)), row('warm', samples.filter((s) => !s.cold))],
          notes: [`${ctx.reps * SAMPLES_PER_REP} fresh children each, cold and warm alternating; open/write/sync/close are medians; base file written through the API at ${fmt(fileSize / MiB / (ingestMs / 1000))} MB/s (1 MiB writes)`],
        },
        {
          title: 'Copy-up: store growth per child',
          headers: ['what', 'value'],
          rows: [
            ['new chunk keys', String(g.newChunkKeys)],
            ['new chunk bytes', `${g.newChunkBytes} (${fmt(g.newChunkBytes / KiB)} KiB)`],
            ['child layer records (inode + entries, key+value bytes)', String(g.layerRecordBytes)],
            ['store.usage(child).size', String(g.usageBytes)],
            ['same growth in every child', String(samples.every((s) => s.newChunkKeys === g.newChunkKeys && s.newChunkBytes === g.newChunkBytes))],
          ],
        },
      ],
      raw: { fileSize, offset, ingestMs, samples },
    }
  } finally {
    await store.close()
    await scratch.remove()
  }
}

/** Commits 'base' holding /big of `size` random bytes; returns the time of the writes. */
async function writeBase(store: Store, size: number): Promise<number> {
  await store.prepare('base-w')
  const data = new Prng(1).bytes(size)
  const ms = await timeMs(() => writeFileInPieces(store.fs('base-w'), '/big', data))
  await store.commit('base', 'base-w')
  return ms
}

/** The write landed where it should and nothing around it moved (checked outside the timing). */
async function checkContent(store: Store, key: string, patch: Buffer, offset: number): Promise<void> {
  const h = await store.fs(key).open('/big', 'r')
  try {
    const got = Buffer.alloc(WRITE + 2)
    await h.read(got, 0, got.length, offset - 1)
    const base = Buffer.alloc(2)
    const bh = await store.fs('base').open('/big', 'r')
    await bh.read(base, 0, 1, offset - 1)
    await bh.read(base, 1, 1, offset + WRITE)
    await bh.close()
    if (!got.subarray(1, WRITE + 1).equals(patch) || got[0] !== base[0] || got[WRITE + 1] !== base[1]) throw new Error(`copy-up check failed in ${key}`)
  } finally {
    await h.close()
  }
}

export const copyUpCase: BenchCase = { name: 'copyup', title: 'Copy-up of a huge file', run }
