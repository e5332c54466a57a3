import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { scratchDir } from '../lib/scratch.js'
import { settleStore } from '../lib/storage.js'
import { fmt, fmtIqr, summarize, timeMs } from '../lib/stats.js'

const TARGET = '/dir/target'
const WARM_STATS = 2000
/** First-stat samples per repetition. */
const FIRST_PER_REP = 5
const DEPTHS = [1, 50, 200]

/** One measured snapshot and the one its ratio is taken against. */
interface Row {
  label: string
  name: string
  base: string
}

/**
 * stat of a name that only the bottom layer holds, under N layers that each change the
 * directories on its path (the root and /dir): the worst case for a per-layer lookup. A committed
 * snapshot reads its merged index instead, so the cost should not grow with N.
 *
 * Two stacks: in one each layer rewrites the same two files (directory sizes stay the same), in
 * the other each layer adds a file to / and to /dir, so the directories also grow; for that one a
 * single layer holding the same names separates the cost of names from the cost of layers.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const top = Math.max(...DEPTHS)
  const scratch = await scratchDir(ctx.args.dir, 'statdepth')
  let store = await Store.open({ path: scratch.path })
  try {
    ctx.log(`stat depth: building two stacks of ${top} layers`)
    const buildMs = await timeMs(async () => {
      await buildStack(store, 'rw', top, (d) => [`/x`, `/dir/x`].map((p) => [p, String(d)]))
      await buildStack(store, 'add', top, (d) => [[`/r${d}`, String(d)], [`/dir/f${d}`, String(d)]])
      for (const d of DEPTHS.slice(1)) await buildFlat(store, `flat${d}`, d)
      for (const d of DEPTHS) await store.prepare(`rw-active${d}`, `rw${d}`)
    })
    await store.close()
    await settleStore(scratch.path)
    store = await Store.open({ path: scratch.path })

    const rows: Row[] = [
      ...DEPTHS.map((d) => ({ label: `committed, ${d} layer(s) each rewriting /x and /dir/x`, name: `rw${d}`, base: 'rw1' })),
      ...DEPTHS.map((d) => ({ label: `active child of the above, ${d} layer(s) below`, name: `rw-active${d}`, base: 'rw-active1' })),
      ...DEPTHS.map((d) => ({ label: `committed, ${d} layer(s) each adding a file to / and /dir`, name: `add${d}`, base: 'add1' })),
      ...DEPTHS.slice(1).map((d) => ({ label: `committed, 1 layer holding the names of ${d} added layers`, name: `flat${d}`, base: 'add1' })),
    ]
    const names = rows.map((r) => r.name)
    const reopened = samplesFor(names)
    const cleared = samplesFor(names)
    const warm = samplesFor(names)
    // A first stat is cheap and noisy, so it gets more samples than the warm loops.
    for (let rep = 0; rep < ctx.reps * FIRST_PER_REP; rep++) {
      // Rotate the order so no snapshot always runs first after a reopen.
      const order = names.map((_, i) => names[(i + rep) % names.length])
      for (const name of order) {
        await store.close()
        store = await Store.open({ path: scratch.path })
        const fs = store.fs(name)
        reopened.get(name)!.push((await timeMs(() => fs.stat(TARGET))) * 1000)
      }
      for (const name of order) {
        const fs = store.fs(name)
        await fs.stat('/')
        store.nodeCache.clear()
        cleared.get(name)!.push((await timeMs(() => fs.stat(TARGET))) * 1000)
      }
      if (rep >= ctx.reps) continue
      for (const name of order) {
        const fs = store.fs(name)
        await fs.stat(TARGET)
        const ms = await timeMs(async () => { for (let i = 0; i < WARM_STATS; i++) await fs.stat(TARGET) })
        warm.get(name)!.push((ms * 1000) / WARM_STATS)
      }
    }

    const kinds = [reopened, cleared, warm]
    const layerEffect = kinds.map((m) => fmt(median(m, `add${top}`) / median(m, `flat${top}`)))
    return {
      tables: [{
        title: `stat('${TARGET}') of a bottom-layer file under N layers that change / and /dir, µs, median [interquartile range]`,
        headers: ['snapshot', 'first stat, store reopened', 'ratio', 'first stat, index cache cleared', 'ratio', `warm stat (mean of ${WARM_STATS})`, 'ratio'],
        rows: [
          ...rows.map((r) => [r.label, ...kinds.flatMap((m) => [fmtIqr(summarize(m.get(r.name)!)), fmt(median(m, r.name) / median(m, r.base))])]),
          [`${top} added layers / 1 layer with the same names`, '', layerEffect[0], '', layerEffect[1], '', layerEffect[2]],
        ],
        notes: [`${ctx.reps * FIRST_PER_REP} first stats and ${ctx.reps} warm loops per row; ratio = median / median of the row's 1-layer case. 'Store reopened': a new Store.open (LevelDB's table and block caches empty too); 'index cache cleared': the snapshot already open, its merged-index node cache emptied. Building the stacks took ${fmt(buildMs / 1000)} s.`],
      }],
      raw: { depths: DEPTHS, buildMs, rows, reopened: Object.fromEntries(reopened), cleared: Object.fromEntries(cleared), warm: Object.fromEntries(warm) },
    }
  } finally {
    await store.close()
    await scratch.remove()
  }
}

const samplesFor = (names: string[]): Map<string, number[]> => new Map(names.map((n) => [n, []]))
const median = (m: Map<string, number[]>, name: string): number => summarize(m.get(name)!).median

/**
 * `${prefix}1` holds /dir/target (and the files of `change(1)`); every later layer writes the
 * files `change(depth)` names and is committed as `${prefix}${depth}`.
 */
async function buildStack(store: Store, prefix: string, depth: number, change: (depth: number) => string[][]): Promise<void> {
  await store.prepare(`${prefix}-w1`)
  const fs = store.fs(`${prefix}-w1`)
  await fs.mkdir('/dir')
  await fs.writeFile(TARGET, 'bottom')
  for (const [p, data] of change(1)) await fs.writeFile(p, data)
  await store.commit(`${prefix}1`, `${prefix}-w1`)
  for (let d = 2; d <= depth; d++) {
    const key = `${prefix}-w${d}`
    await store.prepare(key, `${prefix}${d - 1}`)
    const f = store.fs(key)
    for (const [p, data] of change(d)) await f.writeFile(p, data)
    await store.commit(`${prefix}${d}`, key)
  }
}

/** One layer with the names that `depth` layers of the 'add' stack hold. */
async function buildFlat(store: Store, name: string, depth: number): Promise<void> {
  await store.prepare(`${name}-w`)
  const fs = store.fs(`${name}-w`)
  await fs.mkdir('/dir')
  await fs.writeFile(TARGET, 'bottom')
  for (let d = 2; d <= depth; d++) {
    await fs.writeFile(`/r${d}`, String(d))
    await fs.writeFile(`/dir/f${d}`, String(d))
  }
  await store.commit(name, `${name}-w`)
}

export const statDepthCase: BenchCase = { name: 'stat', title: 'stat cost versus layer count', run }
