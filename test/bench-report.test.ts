import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sax from 'sax'
import { writeReport } from '../bench/report.js'
import { compare } from '../bench/report/format.js'
import { WORKLOAD_NOTES } from '../bench/report/commentary.js'
import { SYSTEM, type SuiteResult, type SystemRow, type TableResult } from '../bench/suite/types.js'
import { fixture, ODD_TITLE } from './fixtures/bench-suite.js'

/**
 * bench/report.ts on a made-up run: ratios and their words, rows without numbers, charts that
 * parse as XML with a bar per row that ran, escaping, and the README's marked block.
 */

const README_HEAD = '# Project\n\nIntro text.\n\n<!-- bench:headline:start -->\n'
const README_TAIL = '<!-- bench:headline:end -->\n\n## More\n\nUntouched & kept.\n'

interface Setup {
  dir: string
  docs: string
  readme: string
  json: string
}

async function setup(readmeText = README_HEAD + 'old numbers\n' + README_TAIL, result: SuiteResult = fixture): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-'))
  const docs = join(dir, 'docs')
  const readme = join(dir, 'README.md')
  const json = join(dir, 'bench', 'results', 'suite-test.json')
  await mkdir(join(dir, 'bench', 'results'), { recursive: true })
  // JSON.stringify writes NaN as null: the report must take a null sample as no sample.
  await writeFile(json, JSON.stringify(result))
  await writeFile(readme, readmeText)
  return { dir, docs, readme, json }
}

/** The markdown table line of `system` in the section of table `id`. */
function rowLine(page: string, id: string, system: string): string {
  const section = page.slice(page.indexOf(`<a id="t-${id}"></a>`))
  const line = section.split('\n').find((l) => l.startsWith(`| ${system} |`) || l.startsWith(`| **${system}** (baseline) |`))
  assert.ok(line, `no row for ${system} in table ${id}`)
  return line
}

interface Svg {
  bars: number
  gaps: string[]
  /** The title's lines, joined by a space. */
  title: string
}

function parseSvg(xml: string): Svg {
  const p = sax.parser(true)
  const out: Svg = { bars: 0, gaps: [], title: '' }
  const titles: string[] = []
  let inText: string | undefined
  p.onerror = (err) => {
    throw err
  }
  p.onopentag = (node) => {
    const cls = String(node.attributes.class ?? '')
    if (node.name === 'rect' && cls === 'bar') out.bars++
    inText = node.name === 'text' ? cls : undefined
  }
  p.ontext = (t) => {
    if (inText === 'title') titles.push(t)
    if (inText === 'gap') out.gaps.push(t)
  }
  p.onclosetag = () => (inText = undefined)
  p.write(xml).close()
  return { ...out, title: titles.join(' ') }
}

test('ratio words follow higherIsBetter, and refuse meaningless ratios', () => {
  assert.equal(compare(5, 9, false, 'ms')?.text, '1.8× faster')
  assert.equal(compare(32, 10, false, 's')?.text, '3.2× slower')
  assert.equal(compare(10, 32, true, 'MB/s')?.text, '3.2× slower')
  assert.equal(compare(18, 10, true, 'ops/s')?.text, '1.8× faster')
  assert.equal(compare(10, 100, false, 'MiB')?.text, '10× smaller')
  assert.equal(compare(102, 100, false, 'ms')?.text, 'about the same')
  assert.equal(compare(0, 5, false, 'ms'), undefined)
  assert.equal(compare(5, 0, false, 'ms'), undefined)
  assert.equal(compare(NaN, 5, true, 'MB/s'), undefined)
})

test('benchmarks page: ratios, reasons, order, escaping', async () => {
  const s = await setup()
  try {
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    const page = await readFile(join(s.docs, 'benchmarks.md'), 'utf8')

    assert.match(rowLine(page, 'copyup-warm', SYSTEM.fuseStore), /\| 12\.0 ms \| 10\.0–14\.0 \| 3 \| 79× faster \| 80 KiB \|/)
    assert.match(rowLine(page, 'copyup-warm', SYSTEM.engine), /288× faster/)
    assert.match(rowLine(page, 'copyup-warm', SYSTEM.fuseOverlayfs), /2\.2× slower/)
    assert.match(rowLine(page, 'copyup-warm', SYSTEM.kernel), /950 ms .*baseline.*1 GiB/)
    assert.match(rowLine(page, 'copyup-warm', SYSTEM.fuseDirs), /failed: EIO: input\/output error, open \/mnt\/big/)
    assert.match(rowLine(page, 'copyup-warm', SYSTEM.plain), /skipped: does not apply: no layers/)
    assert.match(rowLine(page, 'seqread-cold', SYSTEM.fuseStore), /1\.8× slower/)
    assert.match(rowLine(page, 'seqread-cold', SYSTEM.fuseOverlayfs), /1,980 MB\/s \|\s+\| 1 \| 1\.8× faster/)
    assert.match(rowLine(page, 'seqread-cold', SYSTEM.fuseDirs), /no valid samples|no samples/)
    assert.match(rowLine(page, 'seqread-cold', SYSTEM.engine), /\| 0 MB\/s \| 0–0 \| 3 \| — \|/)
    assert.match(rowLine(page, 'seqread-warm', SYSTEM.fuseStore), /about the same/)
    assert.match(rowLine(page, 'depth-200', SYSTEM.kernel), /skipped: more layers than the kernel mounts/)
    assert.match(rowLine(page, 'depth-200', SYSTEM.fuseStore), /\| — \|$/)
    assert.match(rowLine(page, 'snapshot-store', SYSTEM.engine), /10× smaller/)

    // The headline: one line per table, Strata's rows and fuse-overlayfs against the baseline.
    const headline = page.slice(page.indexOf('## Headline'), page.indexOf('\n## 1.'))
    const copyLine = headline.split('\n').find((l) => l.includes('(#t-copyup-warm)'))
    assert.ok(copyLine)
    for (const word of ['79× faster', '288× faster', '2.2× slower', 'failed', 'kernel overlayfs: 950 ms']) assert.ok(copyLine.includes(word), `${word} in ${copyLine}`)
    assert.ok(headline.includes('kernel overlayfs skipped'), 'the depth table names its missing baseline')

    // Sections by workload number, the failed workload's error in its own section.
    const order = [...page.matchAll(/^## (\d+)\. /gm)].map((m) => Number(m[1]))
    assert.deepEqual(order, [1, 2, 3, 5, 8])
    assert.match(page, /## 3\. [^\n]*\n\n_Why:_[^\n]*\n\n\*\*This workload stopped with an error:\*\* ENOSPC: no space left on device/)
    assert.ok(page.includes('ostree commit: ostree is not installed'))
    assert.ok(page.includes('`bench/results/suite-test.json`'), 'the JSON is named relative to the repository')

    // Text from the JSON is literal on the page: no HTML tag, no split table cell.
    assert.ok(!page.includes('<cold>') && !page.includes(ODD_TITLE))
    assert.ok(page.includes('### Read &lt;cold&gt; &amp; "fast" \\| piped'))
    assert.ok(page.includes('![Read &lt;cold&gt; &amp; "fast" \\| piped](benchmarks/seqread-cold.svg)'))
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
})

test('charts: one per table, valid XML, a bar per row that ran and a labelled gap for the others', async () => {
  const s = await setup()
  try {
    await mkdir(join(s.docs, 'benchmarks'), { recursive: true })
    await writeFile(join(s.docs, 'benchmarks', 'stale.svg'), '<svg/>')
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    const files = (await readdir(join(s.docs, 'benchmarks'))).sort()
    assert.deepEqual(files, fixture.tables.map((t) => `${t.id}.svg`).sort(), 'a chart per table, and no stale one')
    for (const t of fixture.tables) {
      const svg = parseSvg(await readFile(join(s.docs, 'benchmarks', `${t.id}.svg`), 'utf8'))
      const ran = t.rows.filter((r) => r.failed === undefined && r.skipped === undefined && r.samples.some((x) => Number.isFinite(x)))
      assert.equal(svg.bars, ran.length, `bars in ${t.id}`)
      assert.equal(svg.gaps.length, t.rows.length - ran.length, `gaps in ${t.id}`)
      assert.equal(svg.title, t.title, 'the title survives escaping')
    }
    const copy = parseSvg(await readFile(join(s.docs, 'benchmarks', 'copyup-warm.svg'), 'utf8'))
    assert.ok(copy.gaps.some((g) => g.startsWith('failed: EIO')))
    assert.ok(copy.gaps.some((g) => g.startsWith('skipped: does not apply')))
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
})

test('README: only the marked block changes; without markers nothing does', async () => {
  const s = await setup()
  try {
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    const readme = await readFile(s.readme, 'utf8')
    assert.ok(readme.startsWith(README_HEAD), 'text before the block untouched')
    assert.ok(readme.endsWith(README_TAIL), 'text after the block untouched')
    assert.ok(!readme.includes('old numbers'))
    const block = readme.slice(README_HEAD.length, readme.length - README_TAIL.length)
    assert.ok(block.includes('](docs/benchmarks.md)'), 'links the full page')
    assert.ok(block.includes('(docs/benchmarks.md#t-copyup-warm)'))
    assert.ok(block.includes('79× faster'))
    assert.ok(block.includes('(docs/benchmarks.md#t-depth-200-cold)'), 'the deepest stack, first stat')
    assert.ok(!block.includes('#t-depth-50-cold') && !block.includes('#t-depth-200)'))
    assert.ok(block.includes('[Read &lt;cold&gt; &amp; "fast" \\| piped](docs/benchmarks.md#t-seqread-cold)'))
    // Rerunning on the result gives the same README: the block is replaced, not appended.
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    assert.equal(await readFile(s.readme, 'utf8'), readme)
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
  const plain = '# Project\n\nNo markers here.\n'
  const t = await setup(plain)
  try {
    await writeReport(t.json, { docsDir: t.docs, readme: t.readme })
    assert.equal(await readFile(t.readme, 'utf8'), plain)
    assert.ok(existsSync(join(t.docs, 'benchmarks.md')))
  } finally {
    await rm(t.dir, { recursive: true, force: true })
  }
})

test('the same JSON gives the same files', async () => {
  const s = await setup()
  try {
    const a = join(s.dir, 'a')
    const b = join(s.dir, 'b')
    await writeReport(s.json, { docsDir: a, readme: s.readme })
    await writeReport(s.json, { docsDir: b, readme: s.readme })
    assert.equal(await readFile(join(a, 'benchmarks.md'), 'utf8'), await readFile(join(b, 'benchmarks.md'), 'utf8'))
    for (const f of await readdir(join(a, 'benchmarks'))) assert.equal(await readFile(join(a, 'benchmarks', f), 'utf8'), await readFile(join(b, 'benchmarks', f), 'utf8'))
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
})

test('every workload has its why, and no figures in it', () => {
  assert.deepEqual(WORKLOAD_NOTES.map((w) => w.number), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  for (const w of WORKLOAD_NOTES) assert.doesNotMatch(w.why, /\d/, `${w.name}: numbers come from the JSON`)
})

test('a file that is not a suite result fails with its name', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-'))
  try {
    const bad = join(dir, 'fuse.json')
    await writeFile(bad, JSON.stringify({ results: [] }))
    await assert.rejects(writeReport(bad, { docsDir: join(dir, 'docs'), readme: join(dir, 'README.md') }), (err: Error) => err.message.includes(bad) && /not a suite result/.test(err.message))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

/** Workloads 10 and 11 as a run on the four writable mounts gives them: the engine does not apply. */
function realTable(id: string, workload: number, title: string, rows: Partial<Record<'kernel' | 'fuseStore' | 'fuseDirs' | 'fuseOverlayfs', Omit<SystemRow, 'system'>>>): TableResult {
  const order = ['fuseStore', 'fuseDirs', 'kernel', 'fuseOverlayfs'] as const
  return {
    id,
    workload,
    title,
    unit: 'ms',
    higherIsBetter: false,
    baseline: SYSTEM.kernel,
    notes: ['A writable mount over one lower layer.'],
    params: { files: 279 },
    rows: [
      ...order.flatMap((k): SystemRow[] => (rows[k] ? [{ system: SYSTEM[k], ...rows[k] }] : [])),
      { system: SYSTEM.engine, samples: [], skipped: 'does not apply: git and tsc need a mounted file system' },
    ],
  }
}

const REAL_TABLES: TableResult[] = [
  // Listed before workload 10's on purpose: the page and the README order by workload number.
  realTable('realbuild-clone', 11, 'git clone of this project (279 files), then sync', {
    kernel: { samples: [400, 410, 420] },
    fuseStore: { samples: [2460, 2460, 2460] },
    fuseDirs: { samples: [6560] },
    fuseOverlayfs: { samples: [820] },
  }),
  realTable('realbuild-tsc', 11, 'tsc -p of the clone (227 files), then sync', {
    kernel: { samples: [20000, 21000, 22000] },
    fuseStore: { samples: [14000] },
    fuseDirs: { samples: [31500] },
    fuseOverlayfs: { samples: [21000] },
  }),
  realTable('realbuild-total', 11, 'git clone and tsc together, each followed by sync', {
    kernel: { samples: [20410, 21410, 22420], extra: { 'bytes added': [5574656, 5574656, 5574656] } },
    fuseStore: { samples: [16460], extra: { 'bytes added': [4090832] } },
    fuseDirs: { samples: [38060], extra: { 'bytes added': [5574656] } },
    fuseOverlayfs: { samples: [21820], extra: { 'bytes added': [5574656] } },
  }),
  realTable('realtree-untar', 10, 'tar -xf of a real tree (3000 files), then sync', {
    kernel: { samples: [1000, 1100, 1200] },
    fuseStore: { samples: [11000, 12000, 13000] },
    fuseDirs: { samples: [33000] },
    fuseOverlayfs: { samples: [2200, 2200, 2200] },
  }),
  realTable('realtree-read', 10, 'find + sha256sum of every file just untarred', {
    kernel: { samples: [400, 400] },
    fuseStore: { samples: [800, 800] },
    fuseDirs: { samples: [1000, 1000] },
    fuseOverlayfs: { samples: [400, 404] },
  }),
  realTable('realtree-rm', 10, 'rm -rf of that tree, then sync', {
    kernel: { samples: [500] },
    fuseStore: { samples: [2500] },
    fuseDirs: { samples: [], failed: 'EIO: input/output error, unlink include/stdio.h' },
    fuseOverlayfs: { samples: [5500] },
  }),
]

/** Every ratio the six tables must show, per system column of the headline. */
const REAL_RATIOS: Record<string, { baseline: string; store: string; dirs: string; fuseOverlayfs: string }> = {
  'realtree-untar': { baseline: 'kernel overlayfs: 1,100 ms', store: '11× slower', dirs: '30× slower', fuseOverlayfs: '2.0× slower' },
  'realtree-read': { baseline: 'kernel overlayfs: 400 ms', store: '2.0× slower', dirs: '2.5× slower', fuseOverlayfs: 'about the same' },
  'realtree-rm': { baseline: 'kernel overlayfs: 500 ms', store: '5.0× slower', dirs: 'failed', fuseOverlayfs: '11× slower' },
  'realbuild-clone': { baseline: 'kernel overlayfs: 410 ms', store: '6.0× slower', dirs: '16× slower', fuseOverlayfs: '2.0× slower' },
  'realbuild-tsc': { baseline: 'kernel overlayfs: 21,000 ms', store: '1.5× faster', dirs: '1.5× slower', fuseOverlayfs: 'about the same' },
  'realbuild-total': { baseline: 'kernel overlayfs: 21,410 ms', store: '1.3× faster', dirs: '1.8× slower', fuseOverlayfs: 'about the same' },
}
const REAL_ORDER = ['realtree-untar', 'realtree-read', 'realtree-rm', 'realbuild-clone', 'realbuild-tsc', 'realbuild-total']

/** The cells of the headline line linking table `id` (link, baseline, then HEADLINE_SYSTEMS' columns). */
function headlineCells(text: string, id: string): string[] {
  const line = text.split('\n').find((l) => l.includes(`#t-${id})`))
  assert.ok(line, `a headline line for ${id}`)
  return line.split(' | ').map((c) => c.replace(/^\| |\s\|$/g, '').trim())
}

test('the real tree and the real build: tables, sections, headline and README rows as ratios to the kernel', async () => {
  const s = await setup(undefined, { ...fixture, tables: [...fixture.tables, ...REAL_TABLES] })
  try {
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    const page = await readFile(join(s.docs, 'benchmarks.md'), 'utf8')

    // Their sections, in workload order after the others, each with its why.
    const order = [...page.matchAll(/^## (\d+)\. /gm)].map((m) => Number(m[1]))
    assert.deepEqual(order, [1, 2, 3, 5, 8, 10, 11])
    assert.match(page, /## 10\. A real tree: untar, read back, rm -rf\n\n_Why:_ /)
    assert.match(page, /## 11\. A real build: git clone, then tsc\n\n_Why:_ /)
    const sec11 = page.slice(page.indexOf('## 11. '))
    assert.deepEqual([...sec11.matchAll(/<a id="t-(realbuild-[a-z]+)"><\/a>/g)].map((m) => m[1]), ['realbuild-clone', 'realbuild-tsc', 'realbuild-total'])

    // The full tables: medians, spread, ratios, the extra column, rows without numbers.
    assert.match(rowLine(page, 'realbuild-tsc', SYSTEM.kernel), /\| 21,000 ms \| 20,000–22,000 \| 3 \| baseline \|/)
    assert.match(rowLine(page, 'realbuild-tsc', SYSTEM.fuseStore), /\| 14,000 ms \|\s+\| 1 \| 1\.5× faster \|/)
    assert.match(rowLine(page, 'realbuild-total', SYSTEM.fuseDirs), /\| 38,060 ms \|\s+\| 1 \| 1\.8× slower \| 5\.32 MiB \|/)
    assert.match(rowLine(page, 'realbuild-clone', SYSTEM.engine), /skipped: does not apply: git and tsc need a mounted file system/)
    assert.match(rowLine(page, 'realtree-rm', SYSTEM.fuseDirs), /failed: EIO: input\/output error, unlink include\/stdio\.h/)

    // The headline on the page and in the README: the same six lines with the same ratios, in
    // workload order, after the tables the README showed before.
    const headline = page.slice(page.indexOf('## Headline'), page.indexOf('\n## 1.'))
    const readme = await readFile(s.readme, 'utf8')
    const block = readme.slice(README_HEAD.length, readme.length - README_TAIL.length)
    for (const text of [headline, block]) {
      for (const id of REAL_ORDER) {
        const cells = headlineCells(text, id)
        const want = REAL_RATIOS[id]
        // link, baseline, store, dirs, engine, fuse-overlayfs
        assert.equal(cells[1], want.baseline, `${id} baseline`)
        assert.deepEqual([cells[2], cells[3], cells[4], cells[5]], [want.store, want.dirs, 'skipped', want.fuseOverlayfs], `${id} ratios`)
      }
    }
    const linked = [...block.matchAll(/\(docs\/benchmarks\.md#t-([a-z0-9-]+)\)/g)].map((m) => m[1])
    assert.deepEqual(linked.slice(-REAL_ORDER.length), REAL_ORDER, 'the README ends with the real tree, then the real build')
    assert.ok(linked.includes('copyup-warm') && linked.indexOf('snapshot-store') < linked.indexOf('realtree-untar'))

    // A chart for each of them.
    for (const id of REAL_ORDER) {
      const svg = parseSvg(await readFile(join(s.docs, 'benchmarks', `${id}.svg`), 'utf8'))
      const t = REAL_TABLES.find((x) => x.id === id)!
      assert.equal(svg.bars, t.rows.filter((r) => r.samples.length && !r.failed && !r.skipped).length, `bars in ${id}`)
    }
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
})

test('the README without the real tree and build tables shows the others, and no empty line for them', async () => {
  const s = await setup()
  try {
    await writeReport(s.json, { docsDir: s.docs, readme: s.readme })
    const readme = await readFile(s.readme, 'utf8')
    assert.ok(!readme.includes('#t-realtree') && !readme.includes('#t-realbuild'))
    assert.ok(readme.includes('#t-snapshot-store'))
  } finally {
    await rm(s.dir, { recursive: true, force: true })
  }
})
