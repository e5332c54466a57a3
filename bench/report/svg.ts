/**
 * One table as a plain SVG bar chart: a bar per system at its median, min–max whiskers, the
 * value with its unit, the baseline's bar darker with a dashed line through it, and a labelled
 * gap for a row that did not run. No scripts, no external fonts: GitHub shows SVGs as images.
 */
import type { TableResult } from '../suite/types.js'
import { fmtBytes, fmtNumber, fmtValue, isBytesUnit, ratioText, rowState, stateLabel } from './format.js'

const WIDTH = 720
const LABEL_RIGHT = 206
const X0 = 214
const X1 = 545
/** Where the rows start under a one-line title; a title that wraps pushes them down. */
const ROWS_TOP = 60
const TITLE_LINE = 19
const TITLE_CHARS = 80
const ROW_H = 28
const BAR_H = 18
/** Average glyph width of the sans-serif fonts at 12 px, to cut text that would overflow. */
const CHAR_W = 6.6
const GAP_CHAR_W = 5.9
const FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"

const COLOR = { strata: '#2b6cb0', baseline: '#4a5568', other: '#a0aec0', whisker: '#1a202c', text: '#1a202c', muted: '#718096', failed: '#9b2c2c', grid: '#e2e8f0' }

export function escapeXml(s: string): string {
  // Control characters other than tab and newline are not allowed in XML 1.0 at all.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`)
}

/** The title in at most two lines of `TITLE_CHARS`, broken at spaces, the rest cut. */
function titleLines(title: string): string[] {
  const words = title.split(' ')
  const lines: string[] = ['']
  for (const w of words) {
    const last = lines[lines.length - 1]
    if (last && [...last].length + 1 + [...w].length > TITLE_CHARS) lines.push(w)
    else lines[lines.length - 1] = last ? `${last} ${w}` : w
  }
  if (lines.length <= 2) return lines.map((l) => cut(l, TITLE_CHARS))
  return [cut(lines[0], TITLE_CHARS), cut(lines.slice(1).join(' '), TITLE_CHARS)]
}

function cut(s: string, maxChars: number): string {
  const chars = [...s]
  return chars.length <= maxChars ? s : chars.slice(0, Math.max(1, maxChars - 1)).join('') + '…'
}

const n1 = (x: number): string => (Math.round(x * 10) / 10).toFixed(1)

/** A round step giving about four grid lines up to `max`: 1, 2, 2.5 or 5 × 10ⁿ, or 2ⁿ for bytes. */
function niceStep(max: number, bytes: boolean): number {
  const raw = max / 4
  if (bytes && raw >= 1) return 2 ** Math.ceil(Math.log2(raw))
  const p = 10 ** Math.floor(Math.log10(raw))
  const m = raw / p
  return p * (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10)
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n1(x)}" y="${n1(y)}"${attrs ? ' ' + attrs : ''}>${escapeXml(s)}</text>`
}

export function chartSvg(t: TableResult): string {
  const states = t.rows.map((r) => ({ row: r, state: rowState(r) }))
  let top = 0
  for (const { state } of states) if (state.kind === 'ran') top = Math.max(top, state.summary.max, state.summary.median)
  const step = top > 0 ? niceStep(top, isBytesUnit(t.unit)) : 1
  const scaleMax = top > 0 ? Math.ceil(top / step - 1e-9) * step : 1
  const x = (v: number): number => X0 + (Math.min(Math.max(v, 0), scaleMax) / scaleMax) * (X1 - X0)
  const title = titleLines(t.title)
  const rowsTop = ROWS_TOP + (title.length - 1) * TITLE_LINE
  const rowsBottom = rowsTop + states.length * ROW_H
  const height = rowsBottom + 28
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${escapeXml(FONT)}" font-size="12">`)
  out.push(`<title>${escapeXml(t.title)}</title>`)
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`)
  // One text element per line; the test (and a reader's copy and paste) take the lines joined by a space.
  title.forEach((line, i) => out.push(text(12, 24 + i * TITLE_LINE, line, `font-size="15" font-weight="bold" fill="${COLOR.text}" class="title"`)))
  const sub = `${t.unit ? t.unit + ', ' : ''}${t.higherIsBetter ? 'higher' : 'lower'} is better · bars: medians, whiskers: min–max · ratios against ${t.baseline}`
  out.push(text(12, rowsTop - 17, cut(sub, 104), `fill="${COLOR.muted}"`))

  for (let k = 0; k * step <= scaleMax + step / 2; k++) {
    const v = k * step
    const gx = x(v)
    out.push(`<line x1="${n1(gx)}" y1="${rowsTop - 4}" x2="${n1(gx)}" y2="${rowsBottom}" stroke="${v === 0 ? COLOR.muted : COLOR.grid}" stroke-width="1"/>`)
    const round = Number(v.toPrecision(12))
    const tick = isBytesUnit(t.unit) ? fmtBytes(round) : fmtNumber(round).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')
    out.push(text(gx, rowsBottom + 16, tick, `text-anchor="middle" fill="${COLOR.muted}" font-size="11"`))
  }

  // Under the bars and gap boxes: a reference line, not something to read a value from.
  const base = states.find((s) => s.row.system === t.baseline)?.state
  if (base?.kind === 'ran') {
    const bx = n1(x(base.summary.median))
    out.push(`<line x1="${bx}" y1="${rowsTop - 4}" x2="${bx}" y2="${rowsBottom}" stroke="${COLOR.baseline}" stroke-width="1" stroke-dasharray="4 3" class="baseline"/>`)
  }

  states.forEach(({ row, state }, i) => {
    const y = rowsTop + i * ROW_H
    const mid = y + ROW_H / 2
    const isBase = row.system === t.baseline
    out.push(text(LABEL_RIGHT, mid + 4, cut(row.system, 31), `text-anchor="end" fill="${COLOR.text}"${isBase ? ' font-weight="bold"' : ''}`))
    if (state.kind !== 'ran') {
      const color = state.kind === 'failed' ? COLOR.failed : COLOR.muted
      const label = cut(stateLabel(state), Math.floor((WIDTH - X0 - 24) / GAP_CHAR_W))
      // A white box over the grid, outlined: an empty place where the bar would be.
      const w = Math.min([...label].length * GAP_CHAR_W + 12, WIDTH - X0 - 8)
      out.push(`<rect x="${X0}" y="${n1(mid - BAR_H / 2)}" width="${n1(w)}" height="${BAR_H}" fill="#ffffff" stroke="${COLOR.grid}" stroke-dasharray="3 2"/>`)
      out.push(text(X0 + 6, mid + 4, label, `fill="${color}" font-style="italic" font-size="11" class="gap"`))
      return
    }
    const s = state.summary
    const fill = isBase ? COLOR.baseline : row.system.startsWith('Strata') ? COLOR.strata : COLOR.other
    const barW = Math.max(x(s.median) - X0, 0)
    out.push(`<rect class="bar" x="${X0}" y="${n1(mid - BAR_H / 2)}" width="${n1(barW)}" height="${BAR_H}" fill="${fill}"/>`)
    if (s.n > 1 && s.max > s.min) {
      const [a, b] = [x(s.min), x(s.max)]
      out.push(`<path d="M${n1(a)} ${n1(mid)}H${n1(b)}M${n1(a)} ${n1(mid - 5)}V${n1(mid + 5)}M${n1(b)} ${n1(mid - 5)}V${n1(mid + 5)}" stroke="${COLOR.whisker}" stroke-width="1.5" fill="none" class="whisker"/>`)
    }
    const ratio = ratioText(t, row)
    const label = `${fmtValue(s.median, t.unit)}${ratio === '—' ? '' : ` · ${ratio}`}`
    const after = Math.max(x(s.median), x(s.max)) + 6
    const w = [...label].length * CHAR_W
    // Past the right edge it goes inside its bar, in white, if the bar is long enough to hold it.
    if (after + w > WIDTH - 6 && barW > w + 12) out.push(text(X0 + barW - 6, mid + 4, label, `text-anchor="end" fill="#ffffff" class="value"`))
    else out.push(text(after, mid + 4, label, `fill="${COLOR.text}" class="value"`))
  })

  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** The chart's file name: the table id, kept to characters safe in a path and a link. */
export function chartFileName(id: string): string {
  return `${id.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[.-]+/, '') || 'table'}.svg`
}
