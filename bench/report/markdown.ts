/** docs/benchmarks.md: the run, how to rerun it, the headline, then every table by workload. */
import type { SuiteResult, SystemRow, TableResult } from '../suite/types.js'
import { summarize } from '../lib/stats.js'
import { fmtBytes, fmtExtra, fmtNumber, fmtValue, isBytesUnit, orderedTables, ratioText, rowState, stateLabel } from './format.js'
import { notesFor, WORKLOAD_NOTES } from './commentary.js'
import { headlineTable } from './headline.js'
import { anchorOf, escapeLinkText, escapeMd, fmtParam, mdTable } from './md.js'

export interface PageInput {
  result: SuiteResult
  /** The JSON as the page names it (relative to the repository when it lies inside). */
  jsonLabel: string
  /** Chart file per table id, relative to the page. */
  charts: Map<string, string>
}

function header(r: SuiteResult, jsonLabel: string): string[] {
  const m = r.machine
  const readAhead = m.disk.readAheadKiB === null ? 'read-ahead unknown' : `read-ahead ${m.disk.readAheadKiB} KiB`
  // Values are what each tool printed, commas and all: one line each.
  const versions = Object.entries(r.versions).map(([k, v]) => `  - ${escapeMd(k)}: ${escapeMd(v)}`)
  const out = [
    '# Strata benchmarks',
    '',
    'Written by `npm run bench:report` from the JSON a run of `npm run bench` saved; to change this page, change the report code or rerun.',
    '',
    `- **Run:** ${escapeMd(r.started)} to ${escapeMd(r.finished)}, ${r.quick ? 'reduced sizes (`--quick`)' : 'full sizes'}, ${r.reps} repetition${r.reps === 1 ? '' : 's'} per system, systems alternated within each repetition`,
    `- **Machine:** ${m.cpus} × ${escapeMd(m.cpuModel)}, ${fmtNumber(m.memGiB)} GiB RAM, disk ${escapeMd(m.disk.device)} (${readAhead})`,
    ...(m.scratch ? [`- **Data and writes on:** ${escapeMd(m.scratch)}`] : []),
    `- **Kernel:** ${escapeMd(m.kernel)}; **Node:** ${escapeMd(m.node)}`,
    `- **Versions:**${versions.length ? '' : ' none recorded'}`,
    ...versions,
    `- **Command:** \`${r.command.replace(/`/g, "'")}\``,
    `- **Raw results:** \`${jsonLabel.replace(/`/g, "'")}\``,
  ]
  const unavailable = Object.entries(r.unavailable)
  if (unavailable.length) out.push('', 'Systems that could not run here:', '', ...unavailable.map(([s, why]) => `- ${escapeMd(s)}: ${escapeMd(why ?? '')}`))
  const errors = Object.entries(r.errors)
  if (errors.length) out.push('', 'Workloads that stopped with an error (their tables are missing):', '', ...errors.map(([w, e]) => `- \`${w.replace(/`/g, "'")}\`: ${escapeMd(e)}`))
  return out
}

const RERUN = [
  '## Rerun',
  '',
  'As root (the suite mounts file systems and drops caches); it installs fuse-overlayfs and ostree from Debian packages when missing, or skips their rows with the reason.',
  '',
  "The data and everything the systems write live on an ext4 that the run makes in a sparse image on a loop device (direct I/O, the read-ahead of the disk below) and removes at its end (bench/suite/scratchfs.ts), so that no system pays for what another deleted before it: on an ext4 without a journal, such as this machine's root, a create after the removal of thousands of files costs up to a millisecond of kernel time while the allocator passes over the inodes just freed. `--host-fs` uses the data dir's own file system instead.",
  '',
  '```sh',
  'sudo npm run bench                 # every workload, full sizes; rewrites this page and the README table',
  'sudo npm run bench -- --quick      # reduced sizes, a few minutes',
  `sudo npm run bench -- --only NAME  # one workload: ${WORKLOAD_NOTES.map((w) => w.name).join(', ')}`,
  'npm run bench:report -- FILE.json  # this page again from a saved run (default: the newest bench/results/suite-*.json)',
  '```',
]

function minMax(row: SystemRow, t: TableResult): string {
  const s = rowState(row)
  if (s.kind !== 'ran' || s.summary.n < 2) return ''
  const f = isBytesUnit(t.unit) ? fmtBytes : fmtNumber
  return `${f(s.summary.min)}–${f(s.summary.max)}`
}

function extraCell(row: SystemRow, name: string): string {
  const xs = (row.extra?.[name] ?? []).filter((x) => Number.isFinite(x))
  return xs.length ? fmtExtra(name, summarize(xs).median) : ''
}

function tableSection(t: TableResult, chart: string | undefined): string[] {
  const extras = [...new Set(t.rows.flatMap((r) => Object.keys(r.extra ?? {})))]
  const headers = ['system', `median (${escapeMd(t.unit || 'value')})`, 'min–max', 'runs', `vs ${escapeMd(t.baseline)}`, ...extras.map((e) => `${escapeMd(e)} (median)`)]
  const rows = t.rows.map((row) => {
    const s = rowState(row)
    const name = row.system === t.baseline ? `**${escapeMd(row.system)}** (baseline)` : escapeMd(row.system)
    if (s.kind !== 'ran') return [name, `_${escapeMd(stateLabel(s))}_`, '', '', '', ...extras.map(() => '')]
    return [name, escapeMd(fmtValue(s.summary.median, t.unit)), minMax(row, t), String(s.summary.n), escapeMd(ratioText(t, row)), ...extras.map((e) => extraCell(row, e))]
  })
  const out = [`<a id="${anchorOf(t.id)}"></a>`, '', `### ${escapeMd(t.title)}`, '', `${t.higherIsBetter ? 'Higher' : 'Lower'} is better.`, '', mdTable(headers, rows, ['l', 'r', 'r', 'r', 'l', ...extras.map((): 'r' => 'r')])]
  if (t.notes.length) out.push('', ...t.notes.map((n) => `- ${escapeMd(n)}`))
  const params = Object.entries(t.params)
  if (params.length) out.push('', `Parameters: ${params.map(([k, v]) => `${escapeMd(k)} ${escapeMd(fmtParam(v))}`).join(' · ')}`)
  if (chart) out.push('', `![${escapeLinkText(t.title)}](${chart})`)
  return out
}

export function benchmarksPage(input: PageInput): string {
  const { result } = input
  const tables = orderedTables(result.tables)
  const out = [...header(result, input.jsonLabel), '', ...RERUN, '', '## Headline', '']
  out.push(
    "Each system's median against the table's baseline (kernel overlayfs wherever it runs the workload), in the table's own sense: " +
      'a time lower, a rate higher. The sections below give every median, its spread and the reason for any row without numbers.',
    '',
    tables.length ? headlineTable(tables, '') : '_This run holds no tables._',
  )
  const numbers = [...new Set(tables.map((t) => t.workload))]
  // A workload that threw has no tables but still gets its section, with the error.
  for (const w of WORKLOAD_NOTES) if (result.errors[w.name] !== undefined && !numbers.includes(w.number)) numbers.push(w.number)
  numbers.sort((a, b) => a - b)
  for (const n of numbers) {
    const notes = notesFor(n)
    out.push('', `## ${n}. ${escapeMd(notes?.heading ?? `Workload ${n}`)}`, '')
    if (notes) out.push(`_Why:_ ${notes.why}`)
    const error = notes ? result.errors[notes.name] : undefined
    if (error !== undefined) out.push('', `**This workload stopped with an error:** ${escapeMd(error)}`)
    for (const t of tables.filter((x) => x.workload === n)) out.push('', ...tableSection(t, input.charts.get(t.id)))
  }
  return out.join('\n') + '\n'
}
