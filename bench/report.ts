/**
 * Turns a suite run's JSON (bench/results/suite-*.json) into docs/benchmarks.md, a chart per
 * table in docs/benchmarks/, and the headline table between the README's markers.
 *
 *   node dist/bench/report.js [suite-json]     (default: the newest bench/results/suite-*.json)
 *
 * The output depends on the JSON alone (no clock, no host lookups), so the same run always
 * gives the same files.
 */
import { readdirSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SuiteResult } from './suite/types.js'
import { readmeBlock, replaceBetweenMarkers } from './report/headline.js'
import { benchmarksPage } from './report/markdown.js'
import { chartFileName, chartSvg } from './report/svg.js'

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..')

export interface ReportOptions {
  /** Where benchmarks.md and benchmarks/ go (default: the repository's docs/). */
  docsDir?: string
  /** The README whose marked block gets the headline (default: the repository's README.md). */
  readme?: string
}

/** Checks the parts of the JSON the report reads, so a wrong file fails with its name. */
function parseSuite(text: string, path: string): SuiteResult {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new Error(`${path}: not JSON (${(err as Error).message})`)
  }
  const r = v as Partial<SuiteResult>
  const bad = (what: string): never => {
    throw new Error(`${path}: not a suite result (${what}); expected the JSON that npm run bench writes`)
  }
  if (typeof r !== 'object' || r === null) bad('not an object')
  if (!Array.isArray(r.tables)) bad('no tables array')
  if (typeof r.machine !== 'object' || r.machine === null) bad('no machine')
  for (const t of r.tables!) {
    if (typeof t?.id !== 'string' || !Array.isArray(t.rows)) bad('a table without id or rows')
    for (const row of t.rows) if (!Array.isArray(row?.samples)) bad(`table ${t.id}: a row without samples`)
  }
  return { versions: {}, unavailable: {}, errors: {}, ...r } as SuiteResult
}

const posix = (p: string): string => p.split(sep).join('/')

/** A path as the page shows it: relative to `base` when inside it, else the file's path as given. */
function shownPath(path: string, base: string): string {
  const rel = relative(base, path)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? posix(rel) : posix(path)
}

export async function writeReport(jsonPath: string, opts: ReportOptions = {}): Promise<void> {
  const docsDir = resolve(opts.docsDir ?? join(repoRoot, 'docs'))
  const readme = resolve(opts.readme ?? join(repoRoot, 'README.md'))
  const result = parseSuite(await readFile(jsonPath, 'utf8'), jsonPath)

  const chartDir = join(docsDir, 'benchmarks')
  await mkdir(chartDir, { recursive: true })
  const charts = new Map<string, string>()
  const used = new Set<string>()
  for (const t of result.tables) {
    let name = chartFileName(t.id)
    // Two ids that differ only in characters unsafe in a path must not share a file.
    for (let k = 2; used.has(name); k++) name = chartFileName(`${t.id}-${k}`)
    used.add(name)
    await writeFile(join(chartDir, name), chartSvg(t))
    charts.set(t.id, `benchmarks/${name}`)
  }
  // Charts of tables this run does not have would be stale: the page no longer shows them.
  for (const f of await readdir(chartDir)) if (f.endsWith('.svg') && !used.has(f)) await rm(join(chartDir, f))

  const jsonLabel = shownPath(resolve(jsonPath), dirname(readme))
  const page = join(docsDir, 'benchmarks.md')
  await writeFile(page, benchmarksPage({ result, jsonLabel, charts }))

  const old = await readFile(readme, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  const updated = old === undefined ? undefined : replaceBetweenMarkers(old, readmeBlock(result, posix(relative(dirname(readme), page))))
  if (updated === undefined) {
    console.log(`note: ${readme} ${old === undefined ? 'does not exist' : 'has no <!-- bench:headline:start --> … <!-- bench:headline:end --> markers'}; left it alone`)
  } else if (updated !== old) {
    await writeFile(readme, updated)
  }
}

/** The newest suite JSON: names carry the start time, so the last name in order is the newest. */
function newestSuiteJson(): string {
  const dir = join(repoRoot, 'bench', 'results')
  let names: string[] = []
  try {
    names = readdirSync(dir).filter((f) => /^suite-.*\.json$/.test(f))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (!names.length) throw new Error(`no suite-*.json in ${dir}: run \`sudo npm run bench\` first, or name a JSON file`)
  return join(dir, names.sort().at(-1)!)
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  if (args.includes('-h') || args.includes('--help')) {
    console.log('usage: node dist/bench/report.js [suite-json]   (default: the newest bench/results/suite-*.json)')
    return
  }
  if (args.length > 1) throw new Error(`one JSON file at most; got ${args.join(' ')}`)
  const json = args[0] ?? newestSuiteJson()
  await writeReport(json)
  console.log(`wrote ${posix(relative(process.cwd(), join(repoRoot, 'docs', 'benchmarks.md')))} from ${json}`)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: Error) => {
    console.error(`bench:report: ${err.message}`)
    process.exitCode = 1
  })
}
