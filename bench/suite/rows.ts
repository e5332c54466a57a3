/**
 * Building blocks of a workload: which systems run it (the rest get `skipped` with why), samples
 * taken alternately, and a system that fails marked `failed` while the others go on.
 */
import { notApplicable } from './systems.js'
import { SYSTEM, type StackMount, type StackSystem, type SystemName, type SystemRow, type TableResult, type WorkloadContext } from './types.js'

/** What one measurement gives: a value in the table's unit, and optional extra measures. */
export type Sample = number | { value: number; extra?: Record<string, number> }

/** The error as a user would see it: its message, without a stack. */
export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err)).trim()

/** The rows of one table, in the order systems are listed. */
export class Rows {
  private readonly rows = new Map<SystemName, SystemRow>()

  constructor(names: SystemName[]) {
    for (const n of names) this.rows.set(n, { system: n, samples: [] })
  }

  private row(name: SystemName): SystemRow {
    const r = this.rows.get(name)
    if (!r) throw new Error(`no row for ${name} in this table`)
    return r
  }

  skip(name: SystemName, why: string): void {
    Object.assign(this.row(name), { samples: [], skipped: why, extra: undefined })
  }

  /** A failure drops the samples taken so far: a partial row would read as a result. */
  fail(name: SystemName, err: unknown): void {
    const r = this.row(name)
    if (r.failed || r.skipped) return
    Object.assign(r, { samples: [], failed: errorText(err), extra: undefined })
  }

  ok(name: SystemName): boolean {
    const r = this.row(name)
    return !r.failed && !r.skipped
  }

  add(name: SystemName, s: Sample): void {
    const r = this.row(name)
    if (typeof s === 'number') { r.samples.push(s); return }
    r.samples.push(s.value)
    for (const [k, v] of Object.entries(s.extra ?? {})) ((r.extra ??= {})[k] ??= []).push(v)
  }

  list(): SystemRow[] {
    return [...this.rows.values()]
  }
}

/** Something measured in a table: a stack system, or the engine in-process. */
export interface Contestant {
  name: SystemName
}

/**
 * Runs `measure` reps × contestants times, each repetition starting with the next one, so a slow
 * spell of the machine spreads over all of them. A contestant that throws is marked failed (in
 * `rows` and in the `linked` tables that share its setup) and not measured again.
 */
export async function alternate<C extends Contestant>(contestants: C[], reps: number, rows: Rows, measure: (c: C, rep: number) => Promise<Sample>, linked: Rows[] = []): Promise<void> {
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < contestants.length; i++) {
      const c = contestants[(rep + i) % contestants.length]
      if (!rows.ok(c.name)) continue
      try {
        rows.add(c.name, await measure(c, rep))
      } catch (err) {
        for (const t of [rows, ...linked]) t.fail(c.name, err)
      }
    }
  }
}

/**
 * The stack systems that can run a stack of `layers` (read-only or writable); the others are
 * marked skipped in `tables`. Returns the runnable ones.
 */
export function runnableStacks(ctx: WorkloadContext, layers: number, writable: boolean, tables: Rows[]): StackSystem[] {
  const out: StackSystem[] = []
  for (const s of ctx.stacks) {
    const why = ctx.unavailable[s.name] ?? notApplicable(s, layers, writable)
    if (why) for (const t of tables) t.skip(s.name, why)
    else out.push(s)
  }
  return out
}

/** Every row name of a table: the engine (when it has a row) and the stack systems. */
export function rowNames(ctx: WorkloadContext, engine: boolean): SystemName[] {
  return [...(engine ? [SYSTEM.engine] : []), ...ctx.stacks.map((s) => s.name)]
}

/** Mounts each system; one that fails to mount is marked failed. Unmount with unmountAll. */
export async function mountAll(systems: StackSystem[], lowers: string[], opts: Parameters<StackSystem['mount']>[1], tables: Rows[]): Promise<Map<SystemName, StackMount>> {
  const mounts = new Map<SystemName, StackMount>()
  for (const s of systems) {
    try {
      mounts.set(s.name, await s.mount(lowers, opts))
    } catch (err) {
      for (const t of tables) t.fail(s.name, err)
    }
  }
  return mounts
}

export async function unmountAll(mounts: Map<SystemName, StackMount>, log: (m: string) => void): Promise<void> {
  for (const [name, m] of mounts) await m.unmount().catch((err: unknown) => log(`${name}: unmount of ${m.root} failed: ${errorText(err)}`))
  mounts.clear()
}

/** A table with kernel overlayfs as its baseline. */
export function table(t: Omit<TableResult, 'baseline' | 'rows'> & { rows: Rows }): TableResult {
  return { ...t, baseline: SYSTEM.kernel, rows: t.rows.list() }
}
