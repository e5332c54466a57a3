/**
 * The benchmark suite's contract (`npm run bench`, bench/suite.ts).
 *
 * A workload runs every system it applies to, alternating them within each repetition, and
 * returns tables of raw samples. The suite writes them as JSON (bench/results/suite-<time>.json,
 * type SuiteResult); bench/report.ts turns that JSON into docs/benchmarks.md and its charts.
 * Nothing here formats numbers: the report does.
 */
import type { DataInfo } from '../lib/fusedata.js'

/** System names, the same in every table, so the report can line rows up across workloads. */
export const SYSTEM = {
  engine: 'Strata engine (in-process)',
  fuseStore: 'Strata FUSE (store layers)',
  fuseDirs: 'Strata FUSE (directory layers)',
  kernel: 'kernel overlayfs',
  fuseOverlayfs: 'fuse-overlayfs',
  plain: 'plain dir',
  cp: 'cp -a',
  tar: 'tar',
  ostree: 'ostree commit',
} as const
export type SystemName = (typeof SYSTEM)[keyof typeof SYSTEM]

/** Everything one system measured in one table. */
export interface SystemRow {
  system: SystemName
  /** One value per repetition, in the table's unit. Empty when the system did not run (see below). */
  samples: number[]
  /** The system ran and failed (for example fuse-overlayfs renaming a lower dir: EXDEV): the error as a user would see it. */
  failed?: string
  /** The system could not run here (not installed, no root) or does not apply: why. */
  skipped?: string
  /** Further per-repetition measures by name, the unit in the name ("bytes added", "store MiB"). */
  extra?: Record<string, number[]>
}

/** One table of a workload (a workload may give several: cold and warm, per layer count...). */
export interface TableResult {
  /** Stable id, unique in the suite (`seqread-cold`, `depth-200`...); the report keys charts by it. */
  id: string
  /** Workload number in the suite (1–11), for ordering. */
  workload: number
  title: string
  unit: string
  higherIsBetter: boolean
  /** The row ratios are taken against (kernel overlayfs wherever it runs the workload). */
  baseline: SystemName
  rows: SystemRow[]
  /** How it was measured, in sentences a reader needs to trust the numbers. */
  notes: string[]
  /** The sizes and counts used (file size, files, layers...), as run. */
  params: Record<string, number | string>
}

export interface WorkloadContext {
  quick: boolean
  /** Repetitions per system (the suite's --reps, smaller with --quick). */
  reps: number
  /** A scratch dir of this workload's own, removed after it. */
  scratch: string
  /** The shared lower data: a big file (`big`) and a tree of small files (`tree/`), made once per run. */
  data: DataInfo
  /** Systems that cannot run here, with the reason: rows for them carry `skipped`. */
  unavailable: Partial<Record<SystemName, string>>
  /** Systems that mount a stack of host dirs (all but the engine and the snapshot tools). */
  stacks: StackSystem[]
  log(msg: string): void
}

export interface Workload {
  /** The `--only` key. */
  name: string
  number: number
  title: string
  run(ctx: WorkloadContext): Promise<TableResult[]>
}

/** A merged tree mounted for a measurement. */
export interface StackMount {
  /** Where the merged tree is seen. */
  root: string
  /** The FUSE daemon serving it, if any. */
  pid?: number
  /** Bytes the write side holds now (upper dir on disk, or the store's growth). Writable mounts only. */
  growthBytes(): Promise<number>
  /** Unmounts and waits for a daemon of its own to exit. */
  unmount(): Promise<void>
  /** Deletes what the mount wrote (its upper dir, or its active snapshot), after unmount. */
  discard(): Promise<void>
}

/**
 * A system that mounts a stack of host directories in the kernel's overlay format (lowers top
 * first), read-only or with a fresh empty upper. Strata's store system imports the lowers into
 * its store once per distinct stack (not timed) and mounts the snapshot.
 */
export interface StackSystem {
  name: SystemName
  /** Why it cannot run here, or undefined. */
  unavailable(): Promise<string | undefined>
  /** Most lower layers it takes (the kernel: 500; Infinity when unbounded). */
  maxLayers: number
  mount(lowers: string[], opts: { writable: boolean; redirectDir?: 'on' | 'off' }): Promise<StackMount>
  /** Drops what it imported or started (the store, its daemon). */
  close(): Promise<void>
}

/** The JSON file a run writes. */
export interface SuiteResult {
  started: string
  finished: string
  command: string
  quick: boolean
  reps: number
  /** `scratch`: the file system of the data and the systems' files (bench/suite/scratchfs.ts); absent in older results. */
  machine: { kernel: string; cpus: number; cpuModel: string; memGiB: number; node: string; disk: { device: string; readAheadKiB: number | null }; scratch?: string }
  versions: Record<string, string>
  /** Systems that could not run, with why. */
  unavailable: Partial<Record<SystemName, string>>
  tables: TableResult[]
  /** Workloads that threw, by name: the run goes on without them. */
  errors: Record<string, string>
}
