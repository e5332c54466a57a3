import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { smallFileTree } from '../lib/hosttree.js'
import { countOpens } from '../lib/opencount.js'
import { scratchDir } from '../lib/scratch.js'
import { fmtSummary, summarize } from '../lib/stats.js'

/**
 * Snapshot of a tree of many small files, then again over the first with nothing changed: the
 * second pass must decide from host stamps alone, opening no file.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const dirs = ctx.args.quick ? 50 : 200
  const perDir = 100
  const host = await scratchDir(ctx.args.dir, 'resnap-host')
  try {
    ctx.log(`re-snapshot: writing ${dirs} × ${perDir} small files`)
    const tree = await smallFileTree(host.path, dirs, perDir, 5)
    const first: number[] = []
    const second: number[] = []
    const opens = { first: [] as number[], second: [] as number[] }
    for (let rep = 0; rep < ctx.reps; rep++) {
      const s = await scratchDir(ctx.args.dir, 'resnap-store')
      const store = await Store.open({ path: s.path })
      try {
            const a = await timed(host.path, () => store.snapshotDir(host.path, { name: 'first' }))
        const b = await timed(host.path, () => store.snapshotDir(host.path, { name: 'second', parent: 'first' }))
        first.push(a.ms); second.push(b.ms)
        opens.first.push(a.opens); opens.second.push(b.opens)
        ctx.log(`  rep ${rep + 1}: first ${a.ms.toFixed(0)} ms (${a.opens} opens), unchanged ${b.ms.toFixed(0)} ms (${b.opens} opens)`)
      } finally {
        await store.close()
        await s.remove()
      }
    }
    const ratios = first.map((f, i) => second[i] / f)
    return {
      tables: [{
        title: `Re-snapshot of an unchanged tree: ${tree.dirs} dirs × ${perDir} files (${tree.files} files, 100–2000 bytes each), ms`,
        headers: ['pass', 'median (min–max)', 'host files opened'],
        rows: [
          ['first snapshotDir (fresh store)', fmtSummary(summarize(first)), opens.first.join(', ')],
          ['again with parent = first, nothing changed', fmtSummary(summarize(second)), opens.second.join(', ')],
          ['ratio second / first', fmtSummary(summarize(ratios)), ''],
        ],
        notes: [`${ctx.reps} repetitions, each in a fresh store; opens are counted by wrapping node:fs for the duration of the call.`],
      }],
      raw: { tree, first, second, opens },
    }
  } finally {
    await host.remove()
  }
}

async function timed(root: string, fn: () => Promise<unknown>): Promise<{ ms: number; opens: number }> {
  const t0 = process.hrtime.bigint()
  const { opens } = await countOpens(root, fn)
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, opens }
}

export const reSnapshotCase: BenchCase = { name: 'resnapshot', title: 'Re-snapshot of an unchanged tree', run }
