/**
 * The headline: one line per table with Strata's rows and fuse-overlayfs against the table's
 * baseline, on the benchmarks page (every table) and in the README (a few key tables).
 */
import { SYSTEM, type SuiteResult, type SystemName, type TableResult } from '../suite/types.js'
import { baselineOf, fmtValue, orderedTables, ratioText } from './format.js'
import { anchorOf, escapeLinkText, escapeMd, mdTable } from './md.js'

/** The systems a reader compares with the baseline, in the order the columns show them. */
export const HEADLINE_SYSTEMS: SystemName[] = [SYSTEM.fuseStore, SYSTEM.fuseDirs, SYSTEM.engine, SYSTEM.fuseOverlayfs]

function cell(t: TableResult, system: SystemName): string {
  const row = t.rows.find((r) => r.system === system)
  return row ? escapeMd(ratioText(t, row)) : '—'
}

function baselineCell(t: TableResult): string {
  const b = baselineOf(t)
  return escapeMd('median' in b ? `${t.baseline}: ${fmtValue(b.median, t.unit)}` : b.missing)
}

/** The headline table; `linkBase` is the page the tables' anchors live on ('' for this page). */
export function headlineTable(tables: TableResult[], linkBase: string): string {
  const rows = tables.map((t) => [`[${escapeLinkText(t.title)}](${linkBase}#${anchorOf(t.id)})`, baselineCell(t), ...HEADLINE_SYSTEMS.map((s) => cell(t, s))])
  return mdTable(['table', 'baseline (median)', ...HEADLINE_SYSTEMS], rows)
}

const depthOf = (t: TableResult): number => Number(/^\D*(\d+)/.exec(t.id)?.[1] ?? -1)

/** Picks the README's key tables (the best and the worst cases for Strata), in its order; a run without one just shows fewer. */
const KEY_TABLES: ((tables: TableResult[]) => (TableResult | undefined)[])[] = [
  (ts) => [ts.find((t) => t.workload === 1)],
  (ts) => [ts.find((t) => t.workload === 2 && /cold/i.test(t.id)), ts.find((t) => t.workload === 2 && /warm/i.test(t.id))],
  (ts) => [ts.find((t) => t.workload === 4 && /\bls\b/i.test(`${t.id} ${t.title}`))],
  // The deepest stack measured (200 layers in a full run), its first stat: where layers are probed.
  (ts) => {
    const depth = ts.filter((t) => t.workload === 5)
    const deepest = Math.max(-1, ...depth.map(depthOf))
    const at = depth.filter((t) => depthOf(t) === deepest)
    return [at.find((t) => /cold/i.test(t.id)) ?? at[0]]
  },
  // where Strata is slowest: many small creates, and a directory rename, through FUSE
  (ts) => [ts.find((t) => t.workload === 6 && /create/i.test(t.id)) ?? ts.find((t) => t.workload === 6)],
  (ts) => [ts.find((t) => t.workload === 7)],
  (ts) => {
    const snap = ts.filter((t) => t.workload === 8)
    const picked = [snap.find((t) => /resnap/i.test(t.id)), snap.find((t) => /size/i.test(t.id))].filter((t) => t !== undefined)
    return picked.length ? picked : [snap[0]]
  },
  // What people do in a writable mount: a real tree untarred, read back and removed; a clone and a build.
  (ts) => ['untar', 'read', 'rm'].map((step) => ts.find((t) => t.workload === 10 && t.id === `realtree-${step}`)),
  (ts) => ['clone', 'tsc', 'total'].map((step) => ts.find((t) => t.workload === 11 && t.id === `realbuild-${step}`)),
]

export function keyTables(result: SuiteResult): TableResult[] {
  const tables = orderedTables(result.tables)
  const picked: TableResult[] = []
  for (const pick of KEY_TABLES) for (const t of pick(tables)) if (t && !picked.includes(t)) picked.push(t)
  return picked
}

/** What the README shows between its markers. */
export function readmeBlock(result: SuiteResult, pageLink: string): string {
  const m = result.machine
  const when = /^\d{4}-\d\d-\d\d/.exec(result.started)?.[0] ?? result.started
  const mode = result.quick ? 'reduced sizes (--quick)' : 'full sizes'
  const lines = [
    `\`npm run bench\`, ${escapeMd(when)}: ${mode}, ${result.reps} repetition${result.reps === 1 ? '' : 's'}, ${m.cpus} CPUs, kernel ${escapeMd(m.kernel)}, Node ${escapeMd(m.node)}. ` +
      `Each cell is a median against the table's baseline. Every table, its spread, charts and why the numbers come out so: [${escapeLinkText(pageLink)}](${pageLink}).`,
    '',
  ]
  const tables = keyTables(result)
  lines.push(tables.length ? headlineTable(tables, pageLink) : '_The run holds none of the key tables._')
  return lines.join('\n')
}

export const README_START = '<!-- bench:headline:start -->'
export const README_END = '<!-- bench:headline:end -->'

/** The README with the text between the markers replaced, or undefined when they are missing. */
export function replaceBetweenMarkers(readme: string, block: string): string | undefined {
  const start = readme.indexOf(README_START)
  if (start < 0) return undefined
  const end = readme.indexOf(README_END, start + README_START.length)
  if (end < 0) return undefined
  return readme.slice(0, start + README_START.length) + '\n' + block + '\n' + readme.slice(end)
}
