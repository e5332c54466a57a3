/**
 * Workload 5, lookup depth: stat of a file only the bottom layer holds, under stacks of 1, 50 and
 * 200 lower layers whose every layer also holds the directories on its path. The kernel merges
 * each of those directories through every layer; Strata's committed snapshots read a merged index.
 */
import { dropCaches } from '../lib/proc.js'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { openEngineStack, type EngineStack } from '../suite/engine.js'
import type { SystemRow, TableResult, Workload, WorkloadContext } from '../suite/types.js'
import { DEPTH_TARGET, DEPTH_TARGET_BYTES, depthLayers, lowersOf } from './layers.js'
import { CheckError, SYSTEM, runRows, stackSystems, unavailable, usSince, withMount, type Participant } from './stacks.js'

const DEPTHS = [1, 50, 200]
const NUMBER = 5

/** One repetition's cold first stat and warm mean, µs. */
interface StatTimes {
  cold: number
  warm: number
}

/** Checks what a stat and a listing of the target's directory show: the right file, every layer's name once. */
function check(system: string, depth: number, st: { isFile(): boolean; size: number | bigint }, names: string[]): void {
  if (!st.isFile() || Number(st.size) !== DEPTH_TARGET_BYTES) throw new CheckError(`${system}, ${depth} layers: ${DEPTH_TARGET} is not a ${DEPTH_TARGET_BYTES}-byte file`)
  const others = names.filter((n) => n.startsWith('other-'))
  if (others.length !== depth || new Set(others).size !== depth || !names.includes('target')) {
    throw new CheckError(`${system}, ${depth} layers: deep/a/b/c lists ${names.length} names (${others.length} other-*), expected target and ${depth} other-*`)
  }
}

/** Cold then warm stats through a fresh mount, in this process (statSync: one syscall each). */
async function statThroughMount(system: string, root: string, depth: number, warmStats: number): Promise<StatTimes> {
  const target = join(root, DEPTH_TARGET)
  dropCaches()
  let t0 = process.hrtime.bigint()
  const st = statSync(target)
  const cold = usSince(t0)
  statSync(target)
  t0 = process.hrtime.bigint()
  for (let i = 0; i < warmStats; i++) statSync(target)
  const warm = usSince(t0) / warmStats
  check(system, depth, st, readdirSync(join(root, 'deep/a/b/c')))
  return { cold, warm }
}

/**
 * The engine's side: the 200-layer stack in a store (bench/suite/engine.ts imports it bottom
 * first as snapshots l0, l1, …), so snapshot `l<d-1>` is the stack of the bottom d layers.
 */
async function engineMeasure(stack: EngineStack, depth: number, warmStats: number): Promise<StatTimes> {
  await stack.reopen()
  const fs = stack.store.fs(`l${depth - 1}`)
  // Opening the snapshot is the engine's mount: not part of the stat.
  await fs.stat('/')
  dropCaches()
  const target = `/${DEPTH_TARGET}`
  let t0 = process.hrtime.bigint()
  const st = await fs.stat(target)
  const cold = usSince(t0)
  await fs.stat(target)
  t0 = process.hrtime.bigint()
  for (let i = 0; i < warmStats; i++) await fs.stat(target)
  const warm = usSince(t0) / warmStats
  check(SYSTEM.engine, depth, st, await fs.readdir('/deep/a/b/c'))
  return { cold, warm }
}

function tables(depth: number, warmStats: number, rows: Record<string, SystemRow[]>): TableResult[] {
  const params = { layers: depth, target: DEPTH_TARGET, warmStats }
  const layout = `Every layer holds deep/a/b/c/other-<n>, so each directory on the path exists in all ${depth} layer(s) and is merged through them; only the bottom layer holds the target. Mounts are read-only, lowerdir= top first.`
  const engine = `Engine: the same layer dirs imported into a store (store.importLayer, format 'overlay') as a chain of committed snapshots, the top one read through store.fs(...).stat; a committed snapshot looks names up in its merged index.`
  const base = { workload: NUMBER, unit: 'µs', higherIsBetter: false, baseline: SYSTEM.kernel, params }
  return [
    {
      ...base,
      id: `depth-${depth}`,
      title: `stat of a bottom-layer file under ${depth} layer${depth > 1 ? 's' : ''}, warm`,
      rows: rows.warm,
      notes: [layout, `Per repetition: the mean of ${warmStats} stat() calls of the target from the bench process (statSync; SnapshotFs.stat for the engine) after one untimed stat, on a fresh mount.`, engine],
    },
    {
      ...base,
      id: `depth-${depth}-cold`,
      title: `stat of a bottom-layer file under ${depth} layer${depth > 1 ? 's' : ''}, cold (first stat)`,
      rows: rows.cold,
      notes: [
        layout,
        `Per repetition: a fresh mount, then sync and the page cache, dentries and inodes dropped (/proc/sys/vm/drop_caches; without the sync, layer dirs and stores written moments before would stay cached as dirty), then the first stat of the target, timed alone. Engine: the store closed and reopened and the snapshot opened (a stat of '/') before the caches are dropped.`,
        'Every mount starts its FUSE daemon anew (Strata\'s store daemon exits after the last unmount of its store), so no daemon keeps a cache from an earlier repetition.',
        engine,
      ],
    },
  ]
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const warmStats = ctx.quick ? 2000 : 20000
  const top = Math.max(...DEPTHS)
  ctx.log(`depth: writing ${top} layer dirs`)
  const layers = await depthLayers(join(ctx.scratch, 'L'), top)
  const engineSkip = unavailable(ctx, SYSTEM.engine)
  const engine = engineSkip === undefined ? await openEngineStack(ctx.scratch, lowersOf(layers, top), ctx.log) : undefined
  try {
    const out: TableResult[] = []
    for (const depth of DEPTHS) {
      const lowers = lowersOf(layers, depth)
      const { usable, skips } = stackSystems(ctx, depth, false)
      const participants: Participant[] = usable.map((s) => ({
        name: s.name,
        run: () => withMount(s, lowers, { writable: false }, async (m) => asResult(await statThroughMount(s.name, m.root, depth, warmStats))),
      }))
      if (engine) participants.push({ name: SYSTEM.engine, run: async () => asResult(await engineMeasure(engine, depth, warmStats)) })
      else skips.push({ name: SYSTEM.engine, skipped: engineSkip! })
      ctx.log(`depth: ${depth} layer(s), ${participants.length} systems × ${ctx.reps} repetitions`)
      out.push(...tables(depth, warmStats, await runRows(ctx, ['warm', 'cold'], participants, skips)))
    }
    return out
  } finally {
    await engine?.close()
  }
}

const asResult = (t: StatTimes) => ({ warm: { value: t.warm }, cold: { value: t.cold } })

export const depthWorkload: Workload = { name: 'depth', number: NUMBER, title: 'Lookup depth: stat through 1, 50 and 200 layers', run }
