/** Markdown pieces: text made safe for a table cell or a line, and tables. */

/**
 * Text from the JSON (titles, reasons, error messages) as literal markdown: GitHub would take
 * `<x>` for HTML and drop it, and `|` would split a table cell.
 */
export function escapeMd(s: string): string {
  return s
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
}

/** Text for the inside of `[...]` (link text, image alt text). */
export function escapeLinkText(s: string): string {
  return escapeMd(s).replace(/[[\]]/g, (c) => '\\' + c)
}

/** The anchor a table's section carries, so the headline can link to it. */
export function anchorOf(tableId: string): string {
  return 't-' + tableId.replace(/[^A-Za-z0-9_-]+/g, '-')
}

/** A markdown table; the first column left-aligned, the rest as `align` says (default right). */
export function mdTable(headers: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const rule = headers.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? ':---' : '---:'))
  const line = (cells: string[]): string => `| ${cells.map((c) => c || ' ').join(' | ')} |`
  return [line(headers), line(rule), ...rows.map(line)].join('\n')
}

/** A number with thousands grouped when it is an integer (parameters: files, layers, bytes). */
export function fmtParam(v: number | string): string {
  if (typeof v === 'string') return v
  return Number.isInteger(v) ? String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : String(v)
}
