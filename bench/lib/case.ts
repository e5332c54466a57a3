import type { BenchArgs } from './args.js'
import type { Table } from './table.js'

export interface CaseContext {
  args: BenchArgs
  /** Repetitions for the main measurement of each case. */
  reps: number
  log: (msg: string) => void
}

export interface CaseResult {
  tables: Table[]
  /** Every sample, for --json. */
  raw: Record<string, unknown>
}

export interface BenchCase {
  name: string
  title: string
  run: (ctx: CaseContext) => Promise<CaseResult>
}
