/** A result table: printed for people, kept whole in the JSON output. */
export interface Table {
  title: string
  headers: string[]
  rows: string[][]
  notes?: string[]
}

export function renderTable(t: Table): string {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |'
  const out = [`### ${t.title}`, '', line(t.headers), '|' + widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|') + '|']
  for (const r of t.rows) out.push(line(r))
  for (const n of t.notes ?? []) out.push('', n)
  return out.join('\n') + '\n'
}
