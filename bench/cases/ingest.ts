import { Level } from 'level'
import xxhash from 'xxhash-wasm'
import { join } from 'node:path'
import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { mixedTree } from '../lib/hosttree.js'
import { Prng } from '../lib/random.js'
import { scratchDir } from '../lib/scratch.js'
import { allChunkBytes, KiB, MiB } from '../lib/storage.js'
import { fmt, fmtSummary, summarize, timeMs } from '../lib/stats.js'

const VALUE = 64 * KiB
/** Values per LevelDB batch in the ceiling run (16 MiB). */
const BATCH_VALUES = 256

/**
 * Snapshot of a host tree of new data, against the most LevelDB can take: batched puts of 64 KiB
 * random values with hash-like (random-order) keys, as many bytes as the tree holds. Each
 * repetition uses a fresh store and a fresh LevelDB, run back to back in alternating order.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const treeBytes = (ctx.args.quick ? 64 : 300) * MiB
  const host = await scratchDir(ctx.args.dir, 'ingest-host')
  try {
    ctx.log(`ingest: writing a ${treeBytes / MiB} MB host tree`)
    const tree = await mixedTree(host.path, treeBytes, 11)
    const ceilingData = await ceilingInput(tree.bytes)
    const snapMBs: number[] = []
    const ceilMBs: number[] = []
    const ratios: number[] = []
    let storedBytes = 0
    for (let rep = 0; rep < ctx.reps; rep++) {
      const order = rep % 2 === 0 ? ['snapshot', 'ceiling'] : ['ceiling', 'snapshot']
      let snap = 0
      let ceil = 0
      for (const what of order) {
        if (what === 'snapshot') {
          const r = await snapshotOnce(ctx, host.path)
          snap = tree.bytes / MiB / (r.ms / 1000)
          storedBytes = r.chunkBytes
        } else {
          ceil = tree.bytes / MiB / ((await ceilingOnce(ctx, ceilingData)) / 1000)
        }
      }
      snapMBs.push(snap)
      ceilMBs.push(ceil)
      ratios.push(snap / ceil)
      ctx.log(`  rep ${rep + 1}: snapshotDir ${fmt(snap)} MB/s, LevelDB ceiling ${fmt(ceil)} MB/s`)
    }
    return {
      tables: [{
        title: `Snapshot of new data: snapshotDir of ${tree.files} files in ${tree.dirs} dirs, ${fmt(tree.bytes / MiB)} MiB (mixed sizes, random content), MB/s`,
        headers: ['what', 'median (min–max)'],
        rows: [
          ['store.snapshotDir (fresh store)', fmtSummary(summarize(snapMBs))],
          [`LevelDB ceiling: batched puts of 64 KiB values (${BATCH_VALUES}/batch, fresh db)`, fmtSummary(summarize(ceilMBs))],
          ['ratio snapshotDir / ceiling (per repetition)', fmtSummary(summarize(ratios))],
        ],
        notes: [`${ctx.reps} repetitions, alternating order; MB = MiB; host files are in the page cache; chunk bytes stored ${fmt(storedBytes / MiB)} MiB.`],
      }],
      raw: { tree, snapMBs, ceilMBs, ratios, storedBytes },
    }
  } finally {
    await host.remove()
  }
}

async function snapshotOnce(ctx: CaseContext, dir: string): Promise<{ ms: number; chunkBytes: number }> {
  const s = await scratchDir(ctx.args.dir, 'ingest-store')
  const store = await Store.open({ path: s.path })
  try {
    const ms = await timeMs(() => store.snapshotDir(dir, { name: 'tree' }))
    return { ms, chunkBytes: (await allChunkBytes(store)).valueBytes }
  } finally {
    await store.close()
    await s.remove()
  }
}

interface CeilingInput {
  keys: string[]
  values: Buffer[]
}

/** Random values and their hash keys, made before timing so that the ceiling is LevelDB alone. */
async function ceilingInput(bytes: number): Promise<CeilingInput> {
  const { h64Raw } = await xxhash()
  const data = new Prng(23).bytes(bytes)
  const out: CeilingInput = { keys: [], values: [] }
  for (let off = 0; off < bytes; off += VALUE) {
    const v = data.subarray(off, Math.min(bytes, off + VALUE))
    out.values.push(v)
    out.keys.push(`C/${h64Raw(v).toString(16).padStart(16, '0')}00`)
  }
  return out
}

async function ceilingOnce(ctx: CaseContext, input: CeilingInput): Promise<number> {
  const s = await scratchDir(ctx.args.dir, 'ingest-level')
  const db = new Level<string, Buffer>(join(s.path, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  await db.open()
  try {
    return await timeMs(async () => {
      for (let i = 0; i < input.keys.length; i += BATCH_VALUES) {
        const batch = db.batch()
        for (let j = i; j < Math.min(input.keys.length, i + BATCH_VALUES); j++) batch.put(input.keys[j], input.values[j])
        await batch.write()
      }
    })
  } finally {
    await db.close()
    await s.remove()
  }
}

export const ingestCase: BenchCase = { name: 'ingest', title: 'Snapshot throughput of new data', run }
