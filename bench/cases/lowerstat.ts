import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Store, openDirStack, type SnapshotFs } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { smallFileTree } from '../lib/hosttree.js'
import { scratchDir } from '../lib/scratch.js'
import { settleStore } from '../lib/storage.js'
import { fmt, fmtIqr, summarize, timeMs } from '../lib/stats.js'

const DIRS = 200
const FILES_PER_DIR = 100
const DEPTHS = [1, 50, 200]
const TARGET = '/dir/target'
/** Warm stats of TARGET per sample: this many, or as many as fit in WARM_MS (a deep uncached stack is slow). */
const WARM_STATS = 1000
const WARM_MS = 250

/**
 * What a FUSE mount asks of the engine most: stat (LOOKUP + GETATTR) of lower objects. A stat of
 * every file of a 20,000-file tree in 200 dirs, as a committed snapshot, as the lower of an active
 * snapshot, and as a directory layer (openDirStack); and a stat of a name that only the bottom of
 * a 1/50/200-layer stack holds, in store stacks and in stacks of directory layers.
 */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const dirs = ctx.args.quick ? 50 : DIRS
  const depths = ctx.args.quick ? [1, 20, 50] : DEPTHS
  const host = await scratchDir(ctx.args.dir, 'lowerstat-host')
  const scratch = await scratchDir(ctx.args.dir, 'lowerstat-store')
  let store = await Store.open({ path: scratch.path })
  try {
    ctx.log(`lower stat: writing ${dirs} × ${FILES_PER_DIR} files`)
    const treeDir = join(host.path, 'tree')
    const tree = await smallFileTree(treeDir, dirs, FILES_PER_DIR, 11)
    const paths: string[] = []
    for (let d = 0; d < dirs; d++) for (let f = 0; f < FILES_PER_DIR; f++) paths.push(`/d${d}/f${f}`)
    ctx.log(`lower stat: building stacks of up to ${Math.max(...depths)} layers`)
    await store.snapshotDir(treeDir, { name: 'tree' })
    await store.prepare('tree-active', 'tree')
    await buildStoreStack(store, Math.max(...depths))
    for (const d of depths) await store.prepare(`deep-active${d}`, `deep${d}`)
    const layerDirs = await buildDirLayers(join(host.path, 'layers'), Math.max(...depths))
    await store.close()
    await settleStore(scratch.path)
    store = await Store.open({ path: scratch.path })

    const statAll = async (fs: SnapshotFs, cpu?: number[]): Promise<number> => {
      const c0 = process.cpuUsage()
      const ms = await timeMs(async () => { for (const p of paths) await fs.stat(p) })
      cpu?.push(cpuMs(c0))
      return ms
    }
    const trees = [
      { label: 'committed snapshot', open: async () => store.fs('tree') },
      { label: 'active snapshot over it (lower = merged index)', open: async () => store.fs('tree-active') },
      { label: 'directory layer (openDirStack)', open: () => openDirStack({ lowerdir: [treeDir] }) },
    ]
    const readdirAll = async (fs: SnapshotFs): Promise<number> => timeMs(async () => { for (let d = 0; d < dirs; d++) await fs.readdir(`/d${d}`, { withFileTypes: true }) })
    const first = trees.map(() => [] as number[])
    const warm = trees.map(() => [] as number[])
    const warmCpu = trees.map(() => [] as number[])
    const listFirst = trees.map(() => [] as number[])
    const listWarm = trees.map(() => [] as number[])
    for (let rep = 0; rep < ctx.reps; rep++) {
      for (const [i, t] of trees.entries()) {
        // a new Store (and a new stack object) per sample: nothing the engine read is kept
        await store.close()
        store = await Store.open({ path: scratch.path })
        const fs = await t.open()
        first[i].push(await statAll(fs))
        warm[i].push(await statAll(fs, warmCpu[i]))
      }
      for (const [i, t] of trees.entries()) {
        await store.close()
        store = await Store.open({ path: scratch.path })
        const fs = await t.open()
        listFirst[i].push(await readdirAll(fs))
        listWarm[i].push(await readdirAll(fs))
      }
    }

    const stacks = [
      ...depths.map((d) => ({ label: `store: committed, ${d} layer(s)`, open: async () => store.fs(`deep${d}`) })),
      ...depths.map((d) => ({ label: `store: active over ${d} layer(s)`, open: async () => store.fs(`deep-active${d}`) })),
      ...depths.map((d) => ({ label: `directory layers: ${d}`, open: () => openDirStack({ lowerdir: layerDirs.slice(-d) }) })),
    ]
    const stackFirst = stacks.map(() => [] as number[])
    const stackWarm = stacks.map(() => [] as number[])
    const stackWarmCpu = stacks.map(() => [] as number[])
    for (let rep = 0; rep < ctx.reps; rep++) {
      for (const [i, s] of stacks.entries()) {
        await store.close()
        store = await Store.open({ path: scratch.path })
        const fs = await s.open()
        stackFirst[i].push((await timeMs(() => fs.stat(TARGET))) * 1000)
        let n = 0
        const c0 = process.cpuUsage()
        const ms = await timeMs(async () => {
          const t0 = performance.now()
          while (n < WARM_STATS && performance.now() - t0 < WARM_MS) { await fs.stat(TARGET); n++ }
        })
        stackWarm[i].push((ms * 1000) / n)
        stackWarmCpu[i].push((cpuMs(c0) * 1000) / n)
      }
    }

    const perStat = (ms: number[]): number[] => ms.map((m) => (m * 1000) / paths.length)
    return {
      tables: [
        {
          title: `stat of every file of a ${tree.files}-file tree in ${tree.dirs} dirs, one after another: µs per stat, median [interquartile range]`,
          headers: ['tree', 'first pass (fresh store / stack object)', 'warm pass', 'warm pass, CPU', 'warm pass, whole tree (ms)'],
          rows: trees.map((t, i) => [t.label, fmtIqr(summarize(perStat(first[i]))), fmtIqr(summarize(perStat(warm[i]))), fmtIqr(summarize(perStat(warmCpu[i]))), fmt(summarize(warm[i]).median)]),
          notes: [`${ctx.reps} repetitions; 'first pass' follows a new Store.open (LevelDB caches empty) or a new openDirStack (the host's own caches are warm). CPU: user + system time of the process (LevelDB's threads included), steadier than wall time on a busy machine.`],
        },
        {
          title: `readdir (withFileTypes) of each of the ${tree.dirs} dirs of ${FILES_PER_DIR} files: ms for all, median [interquartile range]`,
          headers: ['tree', 'first pass (fresh store / stack object)', 'warm pass'],
          rows: trees.map((t, i) => [t.label, fmtIqr(summarize(listFirst[i])), fmtIqr(summarize(listWarm[i]))]),
        },
        {
          title: `stat('${TARGET}') of a name that only the bottom layer holds, every layer changing /dir: µs, median [interquartile range]`,
          headers: ['stack', 'first stat', `warm stat (mean of up to ${WARM_STATS})`, 'warm stat, CPU'],
          rows: stacks.map((s, i) => [s.label, fmtIqr(summarize(stackFirst[i])), fmtIqr(summarize(stackWarm[i])), fmtIqr(summarize(stackWarmCpu[i]))]),
          notes: ['Directory layers: lowerdir= top first, the bottom one holding /dir/target, each other one a /dir with a file of its own, so a lookup probes every layer (as the kernel does).'],
        },
      ],
      raw: { tree, depths, first, warm, warmCpu, listFirst, listWarm, stackFirst, stackWarm, stackWarmCpu, trees: trees.map((t) => t.label), stacks: stacks.map((s) => s.label) },
    }
  } finally {
    await store.close()
    await scratch.remove()
    await host.remove()
  }
}

/** CPU milliseconds (user + system) since `c0`. */
function cpuMs(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000
}

/** `deep1` holds TARGET; every later layer rewrites /x and /dir/x and is committed as `deep${n}`. */
async function buildStoreStack(store: Store, depth: number): Promise<void> {
  await store.prepare('deep-w1')
  const fs = store.fs('deep-w1')
  await fs.mkdir('/dir')
  await fs.writeFile(TARGET, 'bottom')
  await store.commit('deep1', 'deep-w1')
  for (let d = 2; d <= depth; d++) {
    await store.prepare(`deep-w${d}`, `deep${d - 1}`)
    const f = store.fs(`deep-w${d}`)
    await f.writeFile('/x', String(d))
    await f.writeFile('/dir/x', String(d))
    await store.commit(`deep${d}`, `deep-w${d}`)
  }
}

/** Layer dirs, top first (lowerdir= order): the last holds TARGET, each other one /dir/x<n>. */
async function buildDirLayers(root: string, depth: number): Promise<string[]> {
  const out: string[] = []
  for (let d = depth - 1; d >= 0; d--) {
    const layer = join(root, `l${d}`)
    await mkdir(join(layer, 'dir'), { recursive: true })
    if (d === 0) await writeFile(join(layer, TARGET), 'bottom')
    else await writeFile(join(layer, 'dir', `x${d}`), String(d))
    out.push(layer)
  }
  return out
}

export const lowerStatCase: BenchCase = { name: 'lowers', title: 'stat through lower layers: whole trees and deep stacks', run }
