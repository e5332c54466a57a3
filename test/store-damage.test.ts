import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { Store, StoreError, type RepairReport } from '../engine/index.js'
import { patternBytes } from './helpers.js'
import { diffTrees, readTree } from './treecompare.js'

/**
 * A store whose database lost files (CURRENT, the MANIFEST, a table) or was emptied must refuse
 * to open without deleting anything; `fsck --repair` rebuilds what LevelDB can still read, and
 * reports what is gone by snapshot and path.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

function strata(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, STRATA_DEBUG: '', STRATA_LOCK_WAIT: '0' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr })
    })
  })
}

/** The three source trees, snapshotted as base, second (on base) and third (on second). */
const SNAPSHOTS = ['base', 'second', 'third'] as const

/** Files each snapshot adds: small ones (kept inline), a mid-size one (chunks in LevelDB), a big one (a pack). */
function sourceFiles(i: number): Record<string, Buffer> {
  return {
    [`small-${i}.txt`]: Buffer.from(`small file of snapshot ${i}\n`),
    [`dir-${i}/inline`]: patternBytes(1745, 10 + i),
    [`dir-${i}/mid`]: patternBytes(200_000, 20 + i),
    [`dir-${i}/big`]: patternBytes(3 * 1024 * 1024, 30 + i),
  }
}

interface Fixture {
  root: string
  store: string
  /** Source dir of each snapshot (cumulative: each holds its parent's files too). */
  sources: string[]
}

/**
 * A store holding three snapshots, each written by a process of its own (a store closed and
 * reopened): LevelDB writes the log of each into a table on the next open, and the last open
 * leaves every record in tables.
 */
async function buildFixture(root: string): Promise<Fixture> {
  const store = join(root, 'store')
  const sources: string[] = []
  for (let i = 0; i < SNAPSHOTS.length; i++) {
    const src = join(root, `src-${i}`)
    for (let j = 0; j <= i; j++) {
      for (const [name, body] of Object.entries(sourceFiles(j))) {
        await mkdir(join(src, name, '..'), { recursive: true })
        await writeFile(join(src, name), body)
      }
    }
    sources.push(src)
    const s = await Store.open({ path: store })
    await s.snapshotDir(src, { name: SNAPSHOTS[i], parent: i === 0 ? undefined : SNAPSHOTS[i - 1] })
    await s.close()
  }
  // one more open writes the last log into a table
  await (await Store.open({ path: store })).close()
  assert.ok((await tablesOf(store)).length > 0, 'LevelDB has written tables')
  assert.equal((await readdir(join(store, 'packs'))).length, 3, 'one pack per snapshot')
  return { root, store, sources }
}

async function tablesOf(store: string): Promise<string[]> {
  return (await readdir(join(store, 'db'))).filter((n) => n.endsWith('.ldb')).sort()
}

/**
 * Files under db/ and packs/ with their size, mtime and content hash. LevelDB's own diagnostic log
 * (LOG, LOG.old) is left out: every open attempt starts a new one. With `tablesOnly`, only tables
 * and packs: an open that gets as far as reading records has LevelDB write a new manifest and log
 * first, as every open of a sound store does.
 */
async function listing(store: string, tablesOnly = false): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const sub of ['db', 'packs']) {
    let names: string[]
    try {
      names = await readdir(join(store, sub))
    } catch {
      continue
    }
    for (const n of names) {
      if (/^LOG(\.old)?$/.test(n) || (tablesOnly && sub === 'db' && !/\.(ldb|sst)$/.test(n))) continue
      const p = join(store, sub, n)
      const st = await stat(p)
      if (!st.isFile()) continue
      out[`${sub}/${n}`] = `${st.size} ${st.mtimeMs} ${createHash('sha256').update(await readFile(p)).digest('hex')}`
    }
  }
  return out
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'strata-damage-'))
  try {
    await fn(await buildFixture(root))
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

async function refusedOpen(store: string, code: string, pattern: RegExp): Promise<void> {
  let caught: unknown
  try {
    await (await Store.open({ path: store })).close()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof StoreError, `expected the open to be refused, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  assert.match(caught.message, pattern)
}

/** Refused through the CLI as well, by `snapshots` and by `gc`, with nothing on disk changed. */
async function refusedEverywhere(store: string, code: string, pattern: RegExp, tablesOnly = false): Promise<void> {
  const before = await listing(store, tablesOnly)
  await refusedOpen(store, code, pattern)
  for (const args of [['snapshots'], ['gc'], ['fsck']]) {
    const r = await strata(['--store', store, ...args])
    assert.equal(r.code, 1, `strata ${args.join(' ')} should fail: ${r.stdout}`)
    assert.match(r.stderr, pattern)
  }
  assert.deepEqual(await listing(store, tablesOnly), before, 'a refused open changed files in db/ or packs/')
}

async function repairJson(store: string, expectOk: boolean): Promise<RepairReport> {
  const r = await strata(['--store', store, '--json', 'fsck', '--repair'])
  assert.equal(r.code, expectOk ? 0 : 1, r.stderr)
  const report = JSON.parse(r.stdout) as RepairReport
  assert.equal(report.ok, expectOk)
  assert.ok(report.backup !== undefined && (await stat(report.backup)).isDirectory(), 'db/ is copied aside before the repair')
  return report
}

/** Every snapshot reads back byte for byte as the source it was taken from, and fsck --verify-data passes. */
async function assertAllIntact(f: Fixture): Promise<void> {
  const store = await Store.open({ path: f.store })
  try {
    for (let i = 0; i < SNAPSHOTS.length; i++) {
      assert.deepEqual(diffTrees(await readTree(f.sources[i]), await readTree(store.fs(SNAPSHOTS[i]))), [], SNAPSHOTS[i])
    }
    const fsck = await store.fsck({ verifyData: true })
    assert.deepEqual(fsck.problems, [])
  } finally {
    await store.close()
  }
}

test('a missing db/CURRENT is refused with nothing deleted, and fsck --repair brings every snapshot back', () => withFixture(async (f) => {
  await unlink(join(f.store, 'db', 'CURRENT'))
  await refusedEverywhere(f.store, 'EFORMAT', /db\/CURRENT is missing/)
  const report = await repairJson(f.store, true)
  assert.deepEqual(report.intact.sort(), [...SNAPSHOTS].sort())
  assert.deepEqual(report.damaged, [])
  await assertAllIntact(f)
}))

test('a missing MANIFEST is refused, and fsck --repair brings every snapshot back', () => withFixture(async (f) => {
  for (const n of await readdir(join(f.store, 'db'))) if (n.startsWith('MANIFEST-')) await unlink(join(f.store, 'db', n))
  await refusedEverywhere(f.store, 'EIO', /MANIFEST/)
  const text = await strata(['--store', f.store, 'fsck', '--repair'])
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, /intact snapshots \(3\)/)
  assert.match(text.stdout, /nothing was lost/)
  await assertAllIntact(f)
}))

/** Every path of a host tree ('/' included), with whether it is a directory. */
async function sourcePaths(dir: string, rel = ''): Promise<[string, boolean][]> {
  const out: [string, boolean][] = rel === '' ? [['/', true]] : []
  for (const d of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = `${rel}/${d.name}`
    out.push([p, d.isDirectory()])
    if (d.isDirectory()) out.push(...(await sourcePaths(dir, p)))
  }
  return out
}

/** Paths of snapshot `name` that do not read back as in `src`: unlisted, unreadable, or with other bytes. */
async function failingPaths(store: Store, name: string, src: string): Promise<string[]> {
  const fs = store.fs(name)
  const failing: string[] = []
  for (const [p, isDir] of await sourcePaths(src)) {
    try {
      if (isDir) await fs.readdir(p)
      else if (!(await fs.readFile(p)).equals(await readFile(join(src, p)))) failing.push(p)
      await fs.lstat(p)
    } catch {
      failing.push(p)
    }
  }
  return failing
}

const under = (path: string, dir: string): boolean => path === dir || path.startsWith(dir === '/' ? dir : `${dir}/`)

/**
 * The report is honest: a snapshot called intact reads back whole; in a damaged one, every path
 * that does not read back is named (itself or a directory above it) and every named path does fail;
 * a snapshot the report does not mention left no record behind (its layer is gone, or listed as
 * owned by no snapshot).
 */
async function assertHonest(f: Fixture, report: RepairReport, layers: Record<string, string>): Promise<void> {
  const store = await Store.open({ path: f.store })
  try {
    for (let i = 0; i < SNAPSHOTS.length; i++) {
      const name = SNAPSHOTS[i]
      const damaged = report.damaged.find((d) => d.name === name)
      if (report.intact.includes(name)) {
        assert.deepEqual(await failingPaths(store, name, f.sources[i]), [], `${name} is reported intact`)
      } else if (damaged) {
        const failing = await failingPaths(store, name, f.sources[i])
        const named = damaged.paths.map((p) => p.path)
        for (const p of failing) assert.ok(named.some((n) => under(p, n)), `${name}:${p} does not read back but the report does not name it: ${named.join(', ')}`)
        for (const n of named) assert.ok(failing.some((p) => under(p, n)), `${name}:${n} is named lost but reads back`)
      } else if (!report.lostSnapshots.includes(name)) {
        const left = (await store.db.hasPrefix(`L/${layers[name]}`)) || (await store.db.hasPrefix(`I/${layers[name]}/`))
        assert.ok(!left || report.orphanLayers.includes(layers[name]), `${name} (layer ${layers[name]}) is not reported, yet records of it are left`)
      }
    }
  } finally {
    await store.close()
  }
}

for (const damage of ['truncated', 'deleted'] as const) {
  test(`a ${damage} table is refused; fsck --repair salvages the rest and names the lost snapshots and paths`, () => withFixture(async (f) => {
    const layers: Record<string, string> = {}
    const s = await Store.open({ path: f.store })
    for (const name of SNAPSHOTS) layers[name] = (await s.record(name, 'stat')).layer!
    await s.close()
    // which table holds what depends on LevelDB's compactions: the checks below hold for any of them
    const tables = await tablesOf(f.store)
    const table = join(f.store, 'db', damage === 'truncated' ? tables[0] : tables[tables.length - 1])
    if (damage === 'truncated') await truncate(table, Math.floor((await stat(table)).size / 2))
    else await unlink(table)
    await refusedEverywhere(f.store, 'EIO', /cannot open store/, true)

    const report = await repairJson(f.store, false)
    assert.equal(report.lostTables, 1, `the lost table is counted: ${report.found}`)
    assert.ok(report.intact.length < SNAPSHOTS.length, 'a lost table loses something')
    if (damage === 'truncated') assert.ok(report.setAside.includes(`db/lost/${basename(table)}`), `the unreadable table is set aside: ${report.setAside.join(', ')}`)
    await assertHonest(f, report, layers)
    // fsck tells of what the report names rather than passing it over
    const fsck = await strata(['--store', f.store, 'fsck'])
    assert.equal(fsck.code, report.damaged.length > 0 || report.lostSnapshots.length > 0 ? 1 : 0, fsck.stdout)

    // a new snapshot gets ids that overwrite nothing that survived (importing the same files may store lost chunks again)
    const store = await Store.open({ path: f.store })
    try {
      const before = new Map<string, string[]>()
      for (const d of report.damaged) before.set(d.name, await failingPaths(store, d.name, f.sources[SNAPSHOTS.indexOf(d.name as never)]))
      await store.snapshotDir(f.sources[2], { name: 'after' })
      assert.deepEqual(diffTrees(await readTree(f.sources[2]), await readTree(store.fs('after'))), [])
      for (const name of report.intact) assert.deepEqual(await failingPaths(store, name, f.sources[SNAPSHOTS.indexOf(name as never)]), [], name)
      for (const [name, failing] of before) {
        const now = await failingPaths(store, name, f.sources[SNAPSHOTS.indexOf(name as never)])
        assert.deepEqual(now.filter((p) => !failing.includes(p)), [], `${name}: damaged by the new snapshot`)
      }
    } finally {
      await store.close()
    }
  }))
}

test('packs without a database are refused, whether db/ is gone or holds an empty database', () => withFixture(async (f) => {
  const packs = await listing(f.store)
  for (const n of Object.keys(packs)) if (!n.startsWith('packs/')) delete packs[n]
  await rm(join(f.store, 'db'), { recursive: true })
  await refusedEverywhere(f.store, 'EFORMAT', /packs\/ holds 3 pack file/)
  assert.deepEqual(await readdir(f.store).then((names) => names.includes('db')), false, 'no db/ was created')

  // an empty LevelDB database in db/: opened by LevelDB, but no store
  const db = new Level(join(f.store, 'db'))
  await db.open()
  await db.close()
  await refusedEverywhere(f.store, 'EFORMAT', /packs\/ holds 3 pack file/, true)

  // the repair accepts the loss, and says that every pack is unreferenced
  const report = await repairJson(f.store, false)
  assert.deepEqual(report.intact, [])
  assert.equal(report.unreferencedPacks.length, 3)
  const after = await listing(f.store)
  for (const n of Object.keys(after)) if (!n.startsWith('packs/')) delete after[n]
  assert.deepEqual(after, packs, 'the repair leaves packs alone')
}))

test('a repair is refused while another process has the store open, and leaves no copy behind', () => withFixture(async (f) => {
  const store = await Store.open({ path: f.store })
  try {
    let caught: unknown
    try {
      await Store.repair({ path: f.store })
    } catch (err) {
      caught = err
    }
    assert.ok(caught instanceof StoreError && caught.code === 'EBUSY', String(caught))
    assert.match(caught.message, new RegExp(`process ${process.pid}\\b`))
    assert.deepEqual((await readdir(f.store)).filter((n) => n.startsWith('db.before-repair')), [])
  } finally {
    await store.close()
  }
}))

test('a repair raises id counters whose records were lost, so new snapshots overwrite no survivor', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-damage-'))
  try {
    const src = join(root, 'src')
    for (const [name, body] of Object.entries(sourceFiles(0))) {
      await mkdir(join(src, name, '..'), { recursive: true })
      await writeFile(join(src, name), body)
    }
    const path = join(root, 'store')
    let store = await Store.open({ path })
    await store.snapshotDir(src, { name: 'base' })
    await store.prepare('work', 'base')
    await store.fs('work').writeFile('/written', 'through an active snapshot\n')
    // as if the table holding the counters were lost
    const txn = store.db.txn()
    for (const name of ['ino', 'layer', 'node']) txn.del(`N/${name}`)
    await txn.commit(true)
    await store.close()

    const report = await Store.repair({ path })
    assert.equal(report.ok, true, JSON.stringify(report))
    assert.deepEqual(report.intact.sort(), ['base', 'work'])
    assert.deepEqual(report.rewritten.map((r) => r.split(':')[0]).sort(), ['counter ino', 'counter layer', 'counter node'])

    store = await Store.open({ path })
    try {
      await store.snapshotDir(src, { name: 'again' })
      await store.prepare('more', 'again')
      await store.fs('more').writeFile('/other', 'x')
      assert.deepEqual(diffTrees(await readTree(src), await readTree(store.fs('base'))), [])
      assert.equal(await store.fs('work').readFile('/written', 'utf8'), 'through an active snapshot\n')
      assert.deepEqual((await store.fsck()).problems, [])
    } finally {
      await store.close()
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
})
