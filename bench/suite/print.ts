/** The compact text form of a table printed while the suite runs (the report makes the full one). */
import { fmt, fmtSummary, summarize } from '../lib/stats.js'
import { renderTable } from '../lib/table.js'
import type { TableResult } from './types.js'

const median = (xs: number[]): number => (xs.length ? summarize(xs).median : NaN)

export function renderResult(t: TableResult): string {
  const base = median(t.rows.find((r) => r.system === t.baseline)?.samples ?? [])
  const extras = [...new Set(t.rows.flatMap((r) => Object.keys(r.extra ?? {})))]
  const rows = t.rows.map((r) => {
    if (r.skipped) return [r.system, `skipped: ${r.skipped}`, '', ...extras.map(() => '')]
    if (r.failed) return [r.system, `FAILED: ${r.failed.split('\n')[0].slice(0, 160)}`, '', ...extras.map(() => '')]
    const m = median(r.samples)
    const ratio = m / base
    return [r.system, fmtSummary(summarize(r.samples)), Number.isFinite(ratio) ? `${fmt(ratio)}×` : '—', ...extras.map((k) => (r.extra?.[k]?.length ? fmt(median(r.extra[k])) : ''))]
  })
  const direction = t.higherIsBetter ? 'higher is better' : 'lower is better'
  return renderTable({
    title: `${t.title} [${t.id}]`,
    headers: ['system', `${t.unit}, median (min–max)`, `÷ ${t.baseline} (${direction})`, ...extras.map((k) => `${k} (median)`)],
    rows,
  })
}
