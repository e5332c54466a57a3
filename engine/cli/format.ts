/** Text formatting shared by the CLI's human-readable output. */

const S_IFMT = 0o170000
const TYPES: Record<number, { char: string; name: string }> = {
  0o010000: { char: 'p', name: 'fifo' },
  0o020000: { char: 'c', name: 'char-device' },
  0o040000: { char: 'd', name: 'directory' },
  0o060000: { char: 'b', name: 'block-device' },
  0o100000: { char: '-', name: 'file' },
  0o120000: { char: 'l', name: 'symlink' },
  0o140000: { char: 's', name: 'socket' },
}

/** The file type's name as the CLI reports it in stat and --json output. */
export function typeName(mode: number): string {
  return TYPES[mode & S_IFMT]?.name ?? 'unknown'
}

/** `ls -l` style mode string, e.g. `drwxr-xr-x` or `-rwsr-x--T`. */
export function modeString(mode: number): string {
  const type = TYPES[mode & S_IFMT]?.char ?? '?'
  const triplet = (shift: number, special: boolean, specialChar: string): string => {
    const bits = (mode >> shift) & 7
    const exec = bits & 1
    const x = special ? (exec ? specialChar : specialChar.toUpperCase()) : exec ? 'x' : '-'
    return (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + x
  }
  return type + triplet(6, (mode & 0o4000) !== 0, 's') + triplet(3, (mode & 0o2000) !== 0, 's') + triplet(0, (mode & 0o1000) !== 0, 't')
}

/** Permission bits as four octal digits, as stat(1) prints them. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** Bytes in binary units with one decimal, e.g. `1.5 MiB`; exact below 1 KiB. */
export function humanBytes(n: number): string {
  let value = n
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${UNITS[unit]}`
}

const pad2 = (n: number): string => String(n).padStart(2, '0')

/** Local time as `YYYY-MM-DD HH:MM`, sortable and unambiguous. */
export function shortDate(ms: number): string {
  const d = new Date(ms)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`
}

/** Columns padded to their widest cell; `right` names the columns aligned right (numbers). */
export function table(header: string[] | null, rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const all = header ? [header, ...rows] : rows
  const widths = (all[0] ?? []).map((_, col) => Math.max(...all.map((r) => (r[col] ?? '').length)))
  const last = widths.length - 1
  return all
    .map((r) => r.map((cell, col) => (right.has(col) ? cell.padStart(widths[col]) : col === last ? cell : cell.padEnd(widths[col]))).join('  '))
    .join('\n')
}
