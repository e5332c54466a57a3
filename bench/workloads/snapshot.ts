/** Workload 8: snapshots of a build-output tree, first and after each rebuild, and what ten rounds keep on disk. */
import { join } from 'node:path'
import { SYSTEM, type SystemName, type SystemRow, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'
import { dropCaches, runCmd } from '../lib/proc.js'
import { MiB } from '../lib/storage.js'
import { fmt, summarize } from '../lib/stats.js'
import { changeFiles, restoreFiles, treeBytes, writeBuildTree, type BuildTree } from './buildtree.js'
import { OSTREE_MODE, snapshotTools, type SnapshotTool } from './snapshottools.js'

const TREE_SEED = 8
/** Files whose content the checks compare besides the changed ones (cheap for cp and Strata only). */
const SAMPLE_FILES = 20

interface Measures {
  first: number[]
  firstNoSync: number[]
  resnap: number[]
  resnapNoSync: number[]
  resnapMax: number[]
  mib: number[]
}

/**
 * Seconds of one snapshot until its data is on disk: the command, then syncfs on the output's
 * filesystem. ostree commit and Strata's commit sync by themselves and cp and tar do not, so
 * without the sync cp and tar would leave their writing to the kernel after the clock stops.
 * Whatever was dirty before is synced first, untimed. Returns [with sync, without].
 */
async function timedSnapshot(tool: SnapshotTool, round: number, outDir: string): Promise<[number, number]> {
  await runCmd('sync', [])
  const t0 = process.hrtime.bigint()
  await tool.snapshot(round)
  const t1 = process.hrtime.bigint()
  await runCmd('sync', ['-f', outDir])
  const t2 = process.hrtime.bigint()
  return [Number(t2 - t0) / 1e9, Number(t1 - t0) / 1e9]
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const count = ctx.quick ? 1000 : 5000
  const rounds = ctx.quick ? 3 : 10
  ctx.log(`snapshot: writing a build tree of ${count} files`)
  const tree = await writeBuildTree(join(ctx.scratch, 'tree'), count, TREE_SEED)
  const bytes = treeBytes(tree)
  ctx.log(`snapshot: ${fmt(bytes / MiB)} MiB in ${tree.dirs} dirs, ${tree.duplicates} duplicates; ${rounds} rounds of 1% changes`)
  const tools = snapshotTools(tree)
  const skipped = new Map<SystemName, string>()
  for (const t of tools) { const why = ctx.unavailable[t.name]; if (why) skipped.set(t.name, why) }
  const failed = new Map<SystemName, string>()
  const m = new Map<SystemName, Measures>(tools.map((t) => [t.name, { first: [], firstNoSync: [], resnap: [], resnapNoSync: [], resnapMax: [], mib: [] }]))
  const changedBytes: number[] = []

  try {
    for (let rep = 0; rep < ctx.reps; rep++) {
      if (rep > 0) await restoreFiles(tree)
      const live = (): SnapshotTool[] => tools.filter((t) => !skipped.has(t.name) && !failed.has(t.name))
      const outDir = (t: SnapshotTool): string => join(ctx.scratch, 'out', t.name.replace(/[^a-z0-9]+/gi, '-'))
      // Each call rotates the order by `turn`, so no system always goes first (or right after cp's writes).
      const each = async (turn: number, fn: (t: SnapshotTool) => Promise<void>): Promise<void> => {
        const ts = live()
        for (let i = 0; i < ts.length; i++) {
          const t = ts[(turn + i) % ts.length]
          try {
            await fn(t)
          } catch (err) {
            failed.set(t.name, (err as Error).message)
            ctx.log(`  ${t.name} failed: ${(err as Error).message}`)
            await t.discard().catch(() => undefined)
          }
        }
      }
      const rs = new Map<SystemName, number[][]>()
      await each(rep, async (t) => {
        await t.init(outDir(t))
        await runCmd('sync', [])
        dropCaches() // every system starts from the disk, as after a build that ran long ago
        const [s, noSync] = await timedSnapshot(t, 0, outDir(t))
        await t.check(0, sampleOf(tree, []))
        m.get(t.name)!.first.push(s)
        m.get(t.name)!.firstNoSync.push(noSync)
        rs.set(t.name, [])
        ctx.log(`  rep ${rep + 1} ${t.name}: first snapshot ${fmt(s)} s`)
      })
      for (let round = 1; round <= rounds; round++) {
        const { changed, bytes: cb } = await changeFiles(tree, round)
        if (rep === 0) changedBytes.push(cb)
        await each(rep + round, async (t) => {
          rs.get(t.name)!.push(await timedSnapshot(t, round, outDir(t)))
          await t.check(round, sampleOf(tree, changed))
        })
      }
      await each(rep, async (t) => {
        const times = rs.get(t.name)!
        const mm = m.get(t.name)!
        mm.resnap.push(summarize(times.map((x) => x[0])).median)
        mm.resnapNoSync.push(summarize(times.map((x) => x[1])).median)
        mm.resnapMax.push(Math.max(...times.map((x) => x[0])))
        mm.mib.push((await t.finish()) / MiB)
        ctx.log(`  rep ${rep + 1} ${t.name}: re-snapshot ${fmt(mm.resnap[rep])} s, ${fmt(mm.mib[rep])} MiB after ${rounds} rounds`)
        await t.discard()
      })
    }
  } finally {
    // After a throw outside the per-system guard: no store may stay open, no copy stay behind.
    for (const t of tools) await t.discard().catch(() => undefined)
  }

  const row = (t: SnapshotTool, samples: (x: Measures) => number[], extra: (x: Measures) => Record<string, number[]>): SystemRow => {
    if (skipped.has(t.name)) return { system: t.name, samples: [], skipped: skipped.get(t.name) }
    if (failed.has(t.name)) return { system: t.name, samples: [], failed: failed.get(t.name) }
    const x = m.get(t.name)!
    return { system: t.name, samples: samples(x), extra: extra(x) }
  }
  const params = {
    files: count, dirs: tree.dirs, 'tree MiB': Number(fmt(bytes / MiB)), duplicates: tree.duplicates,
    rounds, 'files changed per round': Math.max(1, Math.round(count / 100)),
    'MiB changed per round (median)': Number(fmt(summarize(changedBytes).median / MiB)), 'ostree repo mode': OSTREE_MODE,
  }
  const common = [
    `A deterministic build-output-like tree: ${count} files in ${tree.dirs} nested dirs, ${fmt(bytes / MiB)} MiB of random (incompressible) content, mostly small files, some of 1–3.5 MiB and a few of 12–28 MiB; ${tree.duplicates} files (10%) hold another file's content.`,
    "Systems keep every round: Strata one store, each round a committed snapshot whose parent is the previous round's (snapshotDir); cp -a a new full copy; tar a new archive (tar -cf, no compression); ostree one repo in bare-user mode (plain uncompressed objects, like the others; archive mode would compress random data in vain), a commit per round on one branch.",
    'Times run until the snapshot is on disk: the command, then syncfs of the output filesystem (ostree and Strata sync by themselves, cp and tar do not); extra gives the time without that sync. Dirty data from before is synced untimed.',
    'Baseline is cp -a: there is no kernel overlayfs row, as overlayfs has no snapshot operation.',
    'Each snapshot is checked before its time counts: the file count (Strata through its API, cp by listing, tar -tf, ostree ls -R and the commit count on the branch), and for Strata and cp the content of the changed files and a sample of others.',
  ]
  return [
    {
      id: 'snapshot-first', workload: 8, title: `First snapshot of a ${fmt(bytes / MiB)} MiB build tree (${count} files), cold`, unit: 's', higherIsBetter: false, baseline: SYSTEM.cp,
      rows: tools.map((t) => row(t, (x) => x.first, (x) => ({ 's without the final sync': x.firstNoSync }))),
      notes: [...common, 'Caches (page cache, dentries, inodes) were dropped before each system\'s first snapshot; the systems took turns, a different one first in each repetition.'],
      params,
    },
    {
      id: 'snapshot-resnap', workload: 8, title: 'Re-snapshot after changing 1% of the files (content rewritten, same size)', unit: 's', higherIsBetter: false, baseline: SYSTEM.cp,
      rows: tools.map((t) => row(t, (x) => x.resnap, (x) => ({ 's without the final sync': x.resnapNoSync, 's, slowest round': x.resnapMax }))),
      notes: [...common, `One sample per repetition: the median over the ${rounds} rounds; in each round every system snapshots the same changed tree, taking turns. The tree is in the page cache (warm). Strata reads only files whose host stamp changed; ostree reads and checksums every file again; cp and tar write everything again.`],
      params,
    },
    {
      id: 'snapshot-size', workload: 8, title: `Disk space after the first snapshot and ${rounds} rounds of change + snapshot`, unit: 'MiB', higherIsBetter: false, baseline: SYSTEM.cp,
      rows: tools.map((t) => row(t, (x) => x.mib, () => ({}))),
      notes: [...common, `du-style allocated bytes of everything the system keeps (${rounds + 1} snapshots): the store dir after closing it, the copies, the archives, the repo. The tree itself is ${fmt(bytes / MiB)} MiB.`],
      params,
    },
  ]
}

/** The changed files plus a fixed spread of others: what the content checks read. */
function sampleOf(tree: BuildTree, changed: number[]): number[] {
  const step = Math.max(1, Math.floor(tree.files.length / SAMPLE_FILES))
  const spread = tree.files.map((_, i) => i).filter((i) => i % step === 0)
  return [...new Set([...changed, ...spread])]
}

export const snapshotWorkload: Workload = { name: 'snapshot', number: 8, title: 'Snapshot of a build-output tree', run }
