/**
 * What the stack workloads (depth, smallfiles, renamedir) share: running every system that applies,
 * alternated within each repetition, and turning what they measured into rows of the contract.
 */
import { dirname } from 'node:path'
import { alternate } from '../lib/fuseworkloads.js'
import { runCmd } from '../lib/proc.js'
import type { EngineStack } from '../suite/engine.js'
import { notApplicable } from '../suite/systems.js'
import { SYSTEM, type StackMount, type StackSystem, type SystemName, type SystemRow, type WorkloadContext } from '../suite/types.js'

/** A wrong result (content, counts): no time is trusted after it, so the workload throws. */
export class CheckError extends Error {}

/** What one repetition of one system measured, per table key: the value and any extra measures. */
export type RepResult = Record<string, { value: number; extra?: Record<string, number> }>

/** A system that takes part: `run` does one repetition (mount, measure, check, unmount). */
export interface Participant {
  name: SystemName
  run(rep: number): Promise<RepResult>
}

/** A system that does not take part, with why (not available here, does not apply). */
export interface Skip {
  name: SystemName
  skipped: string
}

/**
 * Runs the participants `reps` times, alternated, and returns their rows per table key. An error
 * that is not a CheckError is what a user of that system would see (a failed mount, EXDEV): it
 * becomes the row's `failed`, and the system is not run again.
 */
export async function runRows(ctx: WorkloadContext, keys: string[], participants: Participant[], skips: Skip[]): Promise<Record<string, SystemRow[]>> {
  const got = new Map<SystemName, RepResult[]>(participants.map((p) => [p.name, []]))
  const failed = new Map<SystemName, string>()
  await alternate(participants, ctx.reps, async (p, rep) => {
    if (failed.has(p.name)) return NaN
    try {
      const r = await p.run(rep)
      for (const k of keys) if (!(k in r)) throw new CheckError(`${p.name}: no value for table ${k}`)
      got.get(p.name)!.push(r)
    } catch (err) {
      if (err instanceof CheckError) throw err
      const msg = err instanceof Error ? err.message : String(err)
      ctx.log(`${p.name} failed: ${msg}`)
      failed.set(p.name, msg)
    }
    return 0
  })
  const out: Record<string, SystemRow[]> = {}
  for (const k of keys) {
    out[k] = [
      ...participants.map((p): SystemRow => {
        const f = failed.get(p.name)
        if (f !== undefined) return { system: p.name, samples: [], failed: f }
        const reps = got.get(p.name)!
        const extra: Record<string, number[]> = {}
        for (const r of reps) for (const [name, v] of Object.entries(r[k].extra ?? {})) (extra[name] ??= []).push(v)
        return { system: p.name, samples: reps.map((r) => r[k].value), ...(Object.keys(extra).length ? { extra } : {}) }
      }),
      ...skips.map((s): SystemRow => ({ system: s.name, samples: [], skipped: s.skipped })),
    ]
  }
  return out
}

/** Why a system cannot run here, from the suite's list of unavailable systems. */
export const unavailable = (ctx: WorkloadContext, name: SystemName): string | undefined => ctx.unavailable[name]

/**
 * The stack systems that can run a stack of `layers` lower layers (writable or not) here, and
 * skips for the others: unavailable on this machine, or not applicable (systems.ts decides).
 */
export function stackSystems(ctx: WorkloadContext, layers: number, writable: boolean): { usable: StackSystem[]; skips: Skip[] } {
  const usable: StackSystem[] = []
  const skips: Skip[] = []
  for (const s of ctx.stacks) {
    const why = unavailable(ctx, s.name) ?? notApplicable(s, layers, writable)
    if (why !== undefined) skips.push({ name: s.name, skipped: why })
    else usable.push(s)
  }
  return { usable, skips }
}

/** Mounts, runs `fn`, and always unmounts; `discard` also drops what a writable mount wrote. */
export async function withMount<T>(s: StackSystem, lowers: string[], opts: { writable: boolean; redirectDir?: 'on' | 'off' }, fn: (m: StackMount) => Promise<T>): Promise<T> {
  const m = await s.mount(lowers, opts)
  try {
    return await fn(m)
  } finally {
    await m.unmount()
    if (opts.writable) await m.discard()
  }
}

/**
 * syncfs(2) of the filesystem holding `path` (coreutils `sync -f`): Node has no binding for it.
 * The spawn costs about a millisecond, the same for every system.
 */
export async function syncFs(path: string): Promise<void> {
  await runCmd('sync', ['-f', path])
}

/**
 * Makes what was written through the mount at `root` durable: syncfs of the mount, then of the
 * filesystem holding the mount dir, upper dirs and stores, because a FUSE mount's syncfs does
 * not reach its daemon (the kernel forwards it to virtiofs only).
 */
export async function syncMount(root: string): Promise<void> {
  await syncFs(root)
  await syncFs(dirname(root))
}

/**
 * The engine as a participant: each repetition on a fresh active snapshot of its stack, named
 * `<prefix>-<rep>` and removed afterwards.
 */
export function engineParticipant(engine: EngineStack, prefix: string, run: (key: string) => Promise<RepResult>): Participant {
  return {
    name: SYSTEM.engine,
    run: async (rep) => {
      const key = `${prefix}-${rep}`
      try {
        return await run(key)
      } finally {
        await engine.store.remove(key).catch(() => {})
      }
    },
  }
}

/** Microseconds since `t0` (process.hrtime.bigint()). */
export const usSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e3

export { SYSTEM }
