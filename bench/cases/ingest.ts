import { Level } from 'level'
import { xxh64 } from '@node-rs/xxhash'
import { join } from 'node:path'
import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { mixedTree } from '../lib/hosttree.js'
import { Prng } from '../lib/random.js'
import { scratchDir } from '../lib/scratch.js'
import { KiB, MiB } from '../lib/storage.js'
import { WRITE_BUFFER } from '../../engine/store/db.js'
import { fmt, fmtSummary, summarize, timeMs } from '../lib/stats.js'

const VALUE = 64 * KiB
/** Values per LevelDB batch in the ceiling run (16 MiB). */
const BATCH_VALUES = 256

/**
 * Snapshot of a host tree of new data, against the most LevelDB can take: batched puts of 64 KiB
 * random values with hash-like (random-order) keys, as many bytes as the tree holds, with LevelDB's
 * default options and with the store's. Each run uses a fresh store or LevelDB.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const treeBytes = (ctx.args.quick ? 64 : 300) * MiB
  const host = await scratchDir(ctx.args.dir, 'ingest-host')
  try {
    ctx.log(`ingest: writing a ${treeBytes / MiB} MB host tree`)
    const tree = await mixedTree(host.path, treeBytes, 11)
    const ceilingData = await ceilingInput(tree.bytes)
    const runs: Record<Kind, () => Promise<number>> = {
      snapshot: () => snapshotOnce(ctx, host.path),
      ceilingDefault: () => ceilingOnce(ctx, ceilingData, undefined),
      ceilingStore: () => ceilingOnce(ctx, ceilingData, WRITE_BUFFER),
    }
    const kinds = Object.keys(runs) as Kind[]
    const mbs: Record<Kind, number[]> = { snapshot: [], ceilingDefault: [], ceilingStore: [] }
    for (let rep = 0; rep < ctx.reps; rep++) {
      // Rotate the order so that none of the three always runs first.
      for (let i = 0; i < kinds.length; i++) {
        const k = kinds[(i + rep) % kinds.length]
        mbs[k].push(tree.bytes / MiB / ((await runs[k]()) / 1000))
      }
      ctx.log(`  rep ${rep + 1}: ${kinds.map((k) => `${k} ${fmt(mbs[k][rep])} MB/s`).join(', ')}`)
    }
    const ratio = (k: Kind): number[] => mbs.snapshot.map((s, i) => s / mbs[k][i])
    return {
      tables: [{
        title: `Snapshot of new data: snapshotDir of ${tree.files} files in ${tree.dirs} dirs, ${fmt(tree.bytes / MiB)} MiB (mixed sizes, random content), MB/s`,
        headers: ['what', 'median (min–max)'],
        rows: [
          ['store.snapshotDir (fresh store)', fmtSummary(summarize(mbs.snapshot))],
          [`LevelDB ceiling, default options: batched puts of 64 KiB values (${BATCH_VALUES}/batch)`, fmtSummary(summarize(mbs.ceilingDefault))],
          [`LevelDB ceiling, the store's options (${WRITE_BUFFER / MiB} MiB write buffer)`, fmtSummary(summarize(mbs.ceilingStore))],
          ['ratio snapshotDir / ceiling, default options', fmtSummary(summarize(ratio('ceilingDefault')))],
          ["ratio snapshotDir / ceiling, store's options", fmtSummary(summarize(ratio('ceilingStore')))],
        ],
        notes: [`${ctx.reps} repetitions in rotating order, each on a fresh store or LevelDB; ratios are taken within a repetition. MB = MiB; the host files are in the page cache.`],
      }],
      raw: { tree, mbs },
    }
  } finally {
    await host.remove()
  }
}

type Kind = 'snapshot' | 'ceilingDefault' | 'ceilingStore'

/** Milliseconds of one snapshotDir of `dir` into a fresh store. */
async function snapshotOnce(ctx: CaseContext, dir: string): Promise<number> {
  const s = await scratchDir(ctx.args.dir, 'ingest-store')
  const store = await Store.open({ path: s.path })
  try {
    return await timeMs(() => store.snapshotDir(dir, { name: 'tree' }))
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
  const data = new Prng(23).bytes(bytes)
  const out: CeilingInput = { keys: [], values: [] }
  for (let off = 0; off < bytes; off += VALUE) {
    const v = data.subarray(off, Math.min(bytes, off + VALUE))
    out.values.push(v)
    out.keys.push(`C/${xxh64(v).toString(16).padStart(16, '0')}00`)
  }
  return out
}

/** Milliseconds of writing every value in batches to a fresh LevelDB. */
async function ceilingOnce(ctx: CaseContext, input: CeilingInput, writeBufferSize: number | undefined): Promise<number> {
  const s = await scratchDir(ctx.args.dir, 'ingest-level')
  const db = new Level<string, Buffer>(join(s.path, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer', ...(writeBufferSize ? { writeBufferSize } : {}) })
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
