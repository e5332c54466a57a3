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
import { SYSTEM } from '../bench/suite/types.js'
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

async function setup(readmeText = README_HEAD + 'old numbers\n' + README_TAIL): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-'))
  const docs = join(dir, 'docs')
  const readme = join(dir, 'README.md')
  const json = join(dir, 'bench', 'results', 'suite-test.json')
  await mkdir(join(dir, 'bench', 'results'), { recursive: true })
  // JSON.stringify writes NaN as null: the report must take a null sample as no sample.
  await writeFile(json, JSON.stringify(fixture))
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
    const order = [...page.matchAll(/^## (\d)\. /gm)].map((m) => Number(m[1]))
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
  assert.deepEqual(WORKLOAD_NOTES.map((w) => w.number), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
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
