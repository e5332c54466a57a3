/**
 * Numbers and words of the report: a row's state, its summary, and its ratio to the baseline.
 * Every page and chart takes them from here, so a table, the headline and a chart never disagree.
 */
import { summarize, type Summary } from '../lib/stats.js'
import type { SystemRow, TableResult } from '../suite/types.js'

/** What one row shows: numbers, or why there are none. */
export type RowState = { kind: 'ran'; summary: Summary } | { kind: 'skipped' | 'failed' | 'empty'; reason: string }

export function rowState(row: SystemRow): RowState {
  // A row that failed or was skipped may still carry samples from before the failure: the
  // reason is what a reader must see, not a partial median.
  if (row.failed !== undefined) return { kind: 'failed', reason: oneLine(row.failed) || 'failed without a message' }
  if (row.skipped !== undefined) return { kind: 'skipped', reason: oneLine(row.skipped) || 'skipped without a reason' }
  const finite = row.samples.filter((x) => Number.isFinite(x))
  if (finite.length === 0) return { kind: 'empty', reason: row.samples.length ? 'no valid samples (none is a finite number)' : 'no samples' }
  return { kind: 'ran', summary: summarize(finite) }
}

/** "skipped: why" / "failed: error" / "no samples", as a row shows it in place of numbers. */
export function stateLabel(s: Exclude<RowState, { kind: 'ran' }>): string {
  return s.kind === 'empty' ? s.reason : `${s.kind}: ${s.reason}`
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim()
}

function group(int: string): string {
  return int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** Three significant digits, thousands grouped, never an exponent for the values benches give. */
export function fmtNumber(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? '∞' : '−∞'
  const a = Math.abs(x)
  const sign = x < 0 ? '−' : ''
  if (a === 0) return '0'
  if (a >= 100) return sign + group(a.toFixed(0))
  if (a >= 10) return sign + a.toFixed(1)
  if (a >= 1) return sign + a.toFixed(2)
  if (a >= 0.001) return sign + a.toPrecision(3)
  return sign + a.toExponential(2)
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

/** Bytes in the binary unit that keeps the number below 1024. */
export function fmtBytes(x: number): string {
  if (!Number.isFinite(x)) return fmtNumber(x)
  let v = Math.abs(x)
  let u = 0
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024
    u++
  }
  // "1 GiB", "80 KiB": trailing zeros say nothing about a size.
  const num = fmtNumber(v).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')
  return `${x < 0 ? '−' : ''}${num} ${BYTE_UNITS[u]}`
}

/** A table whose unit is plain bytes: its values are shown scaled to KiB, MiB... */
export function isBytesUnit(unit: string): boolean {
  return /^(bytes?|B)$/i.test(unit.trim())
}

/** A value in the table's unit ("13.9 ms", "80 KiB"). */
export function fmtValue(x: number, unit: string): string {
  if (isBytesUnit(unit)) return fmtBytes(x)
  return unit ? `${fmtNumber(x)} ${unit}` : fmtNumber(x)
}

/** An extra measure: its unit is in its name ("bytes added"), so only bytes are scaled. */
export function fmtExtra(name: string, x: number): string {
  return /\bbytes?\b/i.test(name) ? fmtBytes(x) : fmtNumber(x)
}

export function fmtFactor(f: number): string {
  return f < 10 ? f.toFixed(1) : group(f.toFixed(0))
}

/**
 * Words for "better" and "worse" by what the unit measures: times and rates are faster or
 * slower, sizes smaller or larger; anything else better or worse.
 */
function words(unit: string, higherIsBetter: boolean): [better: string, worse: string] {
  const u = unit.trim().toLowerCase()
  if (/\/\s*s$|per s(ec(ond)?)?$/.test(u) || /^(ns|µs|μs|us|ms|s|sec|seconds?|min)(\s|$)/.test(u)) return ['faster', 'slower']
  if (/(^|\s)(bytes?|b|kib|mib|gib|tib|kb|mb|gb|tb)(\s|$)/.test(u)) return higherIsBetter ? ['larger', 'smaller'] : ['smaller', 'larger']
  return ['better', 'worse']
}

/** A row against the baseline: how many times better or worse, and the words for it. */
export interface Comparison {
  /** ≥ 1: how many times better (or worse) the row is. */
  factor: number
  better: boolean
  /** "1.8× faster", "3.2× slower", "about the same". */
  text: string
}

/**
 * Compares two medians. None when a ratio means nothing: a missing, zero, negative or
 * non-finite value on either side (0 ms against 5 ms is not "infinitely faster").
 */
export function compare(value: number, base: number, higherIsBetter: boolean, unit: string): Comparison | undefined {
  if (!(Number.isFinite(value) && Number.isFinite(base) && value > 0 && base > 0)) return undefined
  const gain = higherIsBetter ? value / base : base / value
  const better = gain >= 1
  const factor = better ? gain : 1 / gain
  const [up, down] = words(unit, higherIsBetter)
  const text = fmtFactor(factor) === '1.0' ? 'about the same' : `${fmtFactor(factor)}× ${better ? up : down}`
  return { factor, better, text }
}

/** The baseline row's median, or why the table has none. */
export function baselineOf(t: TableResult): { median: number } | { missing: string } {
  const row = t.rows.find((r) => r.system === t.baseline)
  if (!row) return { missing: `no ${t.baseline} row` }
  const s = rowState(row)
  if (s.kind !== 'ran') return { missing: `${t.baseline} ${s.kind === 'empty' ? 'has no samples' : s.kind}` }
  if (!(s.summary.median > 0)) return { missing: `${t.baseline}'s median is ${fmtNumber(s.summary.median)}` }
  return { median: s.summary.median }
}

/** What the ratio cell of a row says: "baseline", the comparison, or why there is none. */
export function ratioText(t: TableResult, row: SystemRow): string {
  if (row.system === t.baseline) return 'baseline'
  const s = rowState(row)
  if (s.kind !== 'ran') return s.kind === 'empty' ? '—' : s.kind
  const base = baselineOf(t)
  if ('missing' in base) return '—'
  return compare(s.summary.median, base.median, t.higherIsBetter, t.unit)?.text ?? '—'
}

/** Tables by workload number, keeping the suite's order within a workload. */
export function orderedTables(tables: TableResult[]): TableResult[] {
  return tables.map((t, i) => ({ t, i })).sort((a, b) => a.t.workload - b.t.workload || a.i - b.i).map((x) => x.t)
}
