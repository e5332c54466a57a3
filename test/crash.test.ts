import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Store } from '../engine/index.js'
import { processAlive } from '../fuse/registry.js'
import { Rng } from './model/prng.js'
import { readTree, diffTrees, type Tree } from './treecompare.js'
import { applyChanges, hostIo, makeTree, mutateTree, writerFile } from './crash/trees.js'

/**
 * Crash harness: processes doing real work on a store are killed with SIGKILL at random points,
 * and after every kill the store must open, pass `fsck --verify-data`, hold every snapshot
 * committed so far (and any the killed process committed) byte for byte as the tree it was made
 * from, and after the next gc hold no temporary snapshot of an interrupted import. Operations:
 * snapshot of a host dir (new and on a parent), commit, gc, OCI import, and writes through a
 * read-write FUSE mount whose daemon is killed, of a store snapshot and of directory layers
 * (every file whose fsync and close returned must be there after a remount, and for directory
 * layers in the upper dir right after the kill and through a kernel overlayfs mount of it). One
 * store (or upper dir) per operation kind is reused across all its kills.
 *
 * The kill points come from a seeded generator, spread over each operation's duration (measured
 * once, in a run that is not killed). STRATA_CRASH_SEED replays a seed; STRATA_CRASH_KILLS sets
 * the total number of kills (default 102).
 */

const DRIVER = fileURLToPath(new URL('./crash/driver.js', import.meta.url))
const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const SEED = process.env.STRATA_CRASH_SEED ? Number(process.env.STRATA_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31)
const TOTAL_KILLS = process.env.STRATA_CRASH_KILLS ? Number(process.env.STRATA_CRASH_KILLS) : 102

/** Share of the kills per operation kind. */
const SHARES = { snapshot: 0.16, 'snapshot --parent': 0.16, commit: 0.14, gc: 0.14, import: 0.14, 'fuse write': 0.13, 'fuse write (dirs)': 0.13 } as const
type Kind = keyof typeof SHARES
const killsFor = (kind: Kind): number => Math.max(1, Math.round(TOTAL_KILLS * SHARES[kind]))

interface Stats { tried: number; killed: number; finished: number; survived: number; ms: number }
const stats = new Map<Kind, Stats>()
const statsOf = (kind: Kind): Stats => {
  let s = stats.get(kind)
  if (!s) stats.set(kind, (s = { tried: 0, killed: 0, finished: 0, survived: 0, ms: 0 }))
  return s
}

let root: string
const started = performance.now()

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-crash-'))
  console.log(`crash harness: seed ${SEED} (STRATA_CRASH_SEED=${SEED} replays it), ${TOTAL_KILLS} kills`)
})

after(async () => {
  const rows = [...stats].map(([k, s]) => `  ${k.padEnd(19)} kill points ${String(s.tried).padStart(3)}, killed ${String(s.killed).padStart(3)}, finished first ${s.finished}, survived ${s.survived}, ${(s.ms / 1000).toFixed(1)} s`)
  console.log(`crash harness, seed ${SEED}:\n${rows.join('\n')}\n  total ${((performance.now() - started) / 1000).toFixed(1)} s`)
  await rm(root, { recursive: true, force: true })
})

// ---- driver processes ----

/** A driver process; `line(pred)` waits for a line of its output, with the time it arrived. */
class Driver {
  readonly child: ChildProcess
  private readonly lines: { text: string; at: number }[] = []
  private waiters: (() => void)[] = []
  private stderr = ''
  readonly exited: Promise<void>

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [DRIVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      this.lines.push({ text, at: performance.now() })
      for (const w of this.waiters.splice(0)) w()
    })
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()))
    this.exited = new Promise((resolve) => this.child.on('exit', () => {
      for (const w of this.waiters.splice(0)) w()
      resolve()
    }))
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  async line(pred: (text: string) => boolean): Promise<{ text: string; at: number } | undefined> {
    for (;;) {
      const found = this.lines.find((l) => pred(l.text))
      if (found) return found
      if (!this.running) return undefined
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  all(): string[] {
    return this.lines.map((l) => l.text)
  }

  /** Waits for it to end by itself; fails with its stderr when it fails. */
  async finish(): Promise<string[]> {
    await this.exited
    assert.equal(this.child.exitCode, 0, `driver failed: ${this.stderr}`)
    return this.all()
  }

  async kill(): Promise<boolean> {
    const wasRunning = this.running
    if (wasRunning) this.child.kill('SIGKILL')
    await this.exited
    return wasRunning && this.child.signalCode === 'SIGKILL'
  }
}

/** A kill point: the delay after a driver's line, at a uniformly random share of a span. */
interface Window { after: string; span: number }

async function runAndKill(args: string[], windows: Window[], rng: Rng, kind: Kind): Promise<{ lines: string[]; delay: string }> {
  const d = new Driver(args)
  const w = rng.pick(windows)
  const delay = Math.round((rng.next() / 2 ** 32) * w.span)
  const s = statsOf(kind)
  s.tried++
  const mark = await d.line((t) => t === w.after)
  if (mark) await sleep(Math.max(0, delay - (performance.now() - mark.at)))
  if (await d.kill()) s.killed++
  else s.finished++
  return { lines: d.all(), delay: `${delay} ms after '${w.after}'` }
}

/** The names a driver reported committed (`done NAME MS`). */
const doneNames = (lines: string[]): string[] => lines.filter((l) => l.startsWith('done ')).map((l) => l.split(' ')[1])
const doneMs = (lines: string[]): number => Number(lines.find((l) => l.startsWith('done '))!.split(' ')[2])

// ---- checks after a kill ----

/** One store and what it must hold: every committed snapshot, by the host tree it was made from. */
interface Tracked {
  path: string
  /** The source tree of a committed snapshot, from its name. */
  sourceOf: (name: string) => string
  /** Committed snapshots seen (and checked out) so far; each must still be there. */
  known: Set<string>
}

/** Source trees never change once made: each is read once. */
const sourceTrees = new Map<string, Promise<Tree>>()
const sourceTree = (dir: string): Promise<Tree> => {
  let tree = sourceTrees.get(dir)
  if (!tree) sourceTrees.set(dir, (tree = readTree(dir)))
  return tree
}

async function checkout(store: Store, name: string, source: string, label: string): Promise<void> {
  const out = await mkdtemp(join(root, 'checkout-'))
  try {
    await store.checkout(name, join(out, 't'))
    assert.deepEqual(diffTrees(await sourceTree(source), await readTree(join(out, 't'))), [], `${label}: checkout of '${name}' differs from ${source}`)
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}

const importKeys = async (store: Store): Promise<string[]> => {
  const keys: string[] = []
  for await (const s of store.walk()) if (s.name.startsWith('.import-')) keys.push(s.name)
  return keys
}

/**
 * The store after a kill: opens, passes fsck --verify-data, holds every snapshot known before
 * (and what the killed process committed, `reported` included) byte for byte; then gc removes
 * exactly the orphans there were and leaves a store that passes fsck. `tidy` runs last.
 */
async function checkStore(t: Tracked, label: string, reported: string[], tidy?: (store: Store) => Promise<void>): Promise<void> {
  const store = await Store.open({ path: t.path, cacheBytes: 32 << 20 })
  try {
    const fsck = await store.fsck({ verifyData: true })
    assert.ok(fsck.ok, `${label}: fsck --verify-data: ${fsck.problems.join('; ')}`)
    const committed = new Set<string>()
    for await (const s of store.walk({ kind: 'committed' })) committed.add(s.name)
    for (const name of [...t.known, ...reported]) assert.ok(committed.has(name), `${label}: committed snapshot '${name}' is gone`)
    for (const name of committed) {
      if (t.known.has(name)) continue
      await checkout(store, name, t.sourceOf(name), label)
      t.known.add(name)
    }
    const orphans = await importKeys(store)
    const report = await store.gc()
    assert.equal(report.orphansRemoved, orphans.length, `${label}: gc removed ${report.orphansRemoved} interrupted imports of ${orphans.length} (${orphans.join(', ')})`)
    assert.ok(report.layersRemoved >= orphans.length, `${label}: gc removed ${report.layersRemoved} layers for ${orphans.length} orphans`)
    assert.deepEqual(await importKeys(store), [], `${label}: temporary snapshots survive gc`)
    const after = await store.fsck()
    assert.ok(after.ok, `${label}: fsck after gc: ${after.problems.join('; ')}`)
    await tidy?.(store)
  } finally {
    await store.close()
  }
}

/** At the end of a kind: every committed snapshot checks out as its source once more. */
async function finalCheck(t: Tracked, label: string): Promise<void> {
  const store = await Store.open({ path: t.path, cacheBytes: 32 << 20 })
  try {
    const fsck = await store.fsck({ verifyData: true })
    assert.ok(fsck.ok, `${label}: fsck --verify-data: ${fsck.problems.join('; ')}`)
    for await (const s of store.walk({ kind: 'committed' })) await checkout(store, s.name, t.sourceOf(s.name), label)
  } finally {
    await store.close()
  }
}

/** Removes the oldest committed snapshots without children, keeping `keep`; gc has work then. */
async function keepNewest(store: Store, keep: number, match: (name: string) => boolean, t: Tracked): Promise<void> {
  const parents = new Set<string>()
  const all = []
  for await (const s of store.walk()) {
    parents.add(s.parent)
    if (s.kind === 'committed' && match(s.name)) all.push(s)
  }
  all.sort((a, b) => a.created - b.created)
  for (const s of all.slice(0, Math.max(0, all.length - keep))) {
    if (parents.has(s.name)) continue
    await store.remove(s.name)
    t.known.delete(s.name)
  }
}

/** `name` is `<letters><tree>_r<round>[.<i>]`: its tree's index. */
const treeOf = (name: string): number => {
  const m = /^[a-z]+(\d+)_/.exec(name)
  if (!m) throw new Error(`unexpected snapshot '${name}'`)
  return Number(m[1])
}

/** Host trees made once per seed and shared by the kinds. */
const trees = new Map<number, string>()
async function tree(i: number): Promise<string> {
  let dir = trees.get(i)
  if (!dir) {
    dir = join(root, 'trees', String(i))
    await makeTree(dir, SEED + i * 1000003)
    trees.set(i, dir)
  }
  return dir
}

/** A kind: its store, a measured run, then kills until its share is spent. */
async function killLoop(kind: Kind, rounds: (rng: Rng, round: number, label: string) => Promise<void>): Promise<void> {
  const rng = new Rng(SEED ^ [...kind].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7))
  const s = statsOf(kind)
  const t0 = performance.now()
  const want = killsFor(kind)
  try {
    for (let round = 1; s.killed < want && round <= 2 * want; round++) {
      await rounds(rng, round, `seed ${SEED}, ${kind}, kill ${round}`)
      s.survived++
    }
  } finally {
    s.ms = performance.now() - t0
  }
}

// ---- the kinds ----

test('orphans: an import killed mid-way leaves a temporary snapshot that gc reclaims and reports', { timeout: 60_000 }, async () => {
  const path = join(root, 'orphan-store')
  const src = await tree(0)
  const d = new Driver(['snapshot', path, src, 'base0_r0', ''])
  // the store is open and the import has begun once its temporary snapshot exists
  await d.line((l) => l === 'ready')
  for (let i = 0; i < 400 && d.running; i++) {
    await sleep(5)
    if (existsSync(join(path, 'packs')) && readdirSync(join(path, 'packs')).some((n) => n.endsWith('.pack'))) break
  }
  assert.ok(await d.kill(), 'the import ended before it could be killed')
  const store = await Store.open({ path })
  try {
    const orphans = await importKeys(store)
    assert.equal(orphans.length, 1, `one temporary snapshot after the kill: ${orphans.join(', ')}`)
    const report = await store.gc()
    assert.equal(report.orphansRemoved, 1)
    assert.ok(report.layersRemoved >= 1 && report.chunksRemoved + report.packsRemoved > 0, `the import's data is reclaimed: ${JSON.stringify(report)}`)
    assert.deepEqual(await importKeys(store), [])
    assert.ok((await store.fsck({ verifyData: true })).ok)
    // an import running in this process keeps its temporary snapshot through a gc
    let finished = false
    const importing = store.snapshotDir(src, { name: 'again' }).finally(() => { finished = true })
    let spared = 0
    while (!finished) {
      if ((await importKeys(store)).length === 0) {
        await sleep(2)
        continue
      }
      const r = await store.gc()
      assert.equal(r.orphansRemoved, 0, 'gc removed the snapshot of an import in flight')
      spared++
    }
    await importing
    await checkout(store, 'again', src, 'import after gc')
    assert.ok(spared > 0, 'gc ran while the import\'s temporary snapshot existed')
    for (const reserved of ['.import-x', '.import-0123456789abcdef']) {
      await assert.rejects(store.prepare(reserved), { code: 'EINVAL' })
      await assert.rejects(store.snapshotDir(src, { name: reserved }), { code: 'EINVAL' })
    }
  } finally {
    await store.close()
  }
})

test('crash: snapshot of a host dir killed at random points', { timeout: 600_000 }, async () => {
  const t: Tracked = { path: join(root, 'snapshot-store'), sourceOf: (n) => trees.get(treeOf(n))!, known: new Set() }
  for (let i = 0; i < 4; i++) await tree(i)
  const first = await new Driver(['snapshot', t.path, await tree(0), 's0_r0', '']).finish()
  await checkStore(t, 'snapshot, measured run', doneNames(first))
  const span = doneMs(first)
  await killLoop('snapshot', async (rng, round, label) => {
    const k = round % 4
    const { lines, delay } = await runAndKill(['snapshot', t.path, await tree(k), `s${k}_r${round}`, '', '--loop'], [{ after: 'ready', span }], rng, 'snapshot')
    await checkStore(t, `${label} (${delay})`, doneNames(lines), (store) => keepNewest(store, 4, () => true, t))
  })
  await finalCheck(t, `seed ${SEED}, snapshot, final`)
})

test('crash: snapshot --parent (a chain of rebuilds) killed at random points', { timeout: 600_000 }, async () => {
  const chain = [await tree(0)]
  const t: Tracked = { path: join(root, 'chain-store'), sourceOf: (n) => chain[treeOf(n)], known: new Set() }
  const next = async (i: number): Promise<string> => {
    while (chain.length <= i) {
      const dir = join(root, 'chain', String(chain.length))
      await mkdir(join(root, 'chain'), { recursive: true })
      await mutateTree(chain[chain.length - 1], dir, SEED + chain.length)
      chain.push(dir)
    }
    return chain[i]
  }
  await checkStore(t, 'chain base', doneNames(await new Driver(['snapshot', t.path, chain[0], 'p0_r0', '']).finish()))
  let top = 0
  const measured = await new Driver(['snapshot', t.path, await next(1), 'p1_r0', 'p0_r0']).finish()
  await checkStore(t, 'snapshot --parent, measured run', doneNames(measured))
  top = 1
  const span = doneMs(measured)
  await killLoop('snapshot --parent', async (rng, round, label) => {
    const parent = [...t.known].filter((n) => treeOf(n) === top)[0]
    const { lines, delay } = await runAndKill(['snapshot', t.path, await next(top + 1), `p${top + 1}_r${round}`, parent, '--loop'], [{ after: 'ready', span }], rng, 'snapshot --parent')
    await checkStore(t, `${label} (${delay})`, doneNames(lines))
    if ([...t.known].some((n) => treeOf(n) === top + 1)) top++
  })
  await finalCheck(t, `seed ${SEED}, snapshot --parent, final`)
})

test('crash: commit of an active snapshot (writes, then commit) killed at random points', { timeout: 600_000 }, async () => {
  const expected = new Map<number, string>()
  const changed = async (seed: number): Promise<string> => {
    let dir = expected.get(seed)
    if (!dir) {
      dir = join(root, 'changed', String(seed))
      await mkdir(join(root, 'changed'), { recursive: true })
      await new Promise<void>((resolve, reject) => execFile('cp', ['-a', trees.get(0)!, dir!], (err) => (err ? reject(err) : resolve())))
      await applyChanges(hostIo(dir), seed)
      expected.set(seed, dir)
    }
    return dir
  }
  await tree(0)
  const t: Tracked = { path: join(root, 'commit-store'), sourceOf: (n) => (n === 'base0_r0' ? trees.get(0)! : expected.get(treeOf(n))!), known: new Set() }
  await new Driver(['snapshot', t.path, trees.get(0)!, 'base0_r0', '']).finish()
  await changed(1)
  const first = new Driver(['commit', t.path, 'base0_r0', 'c1_r0', '1'])
  const lines = await first.finish()
  const ready = (await first.line((l) => l === 'ready'))!.at
  const committing = (await first.line((l) => l === 'committing'))!.at
  const total = doneMs(lines)
  const commitSpan = Math.max(5, total - (committing - ready))
  await checkStore(t, 'commit, measured run', doneNames(lines))
  await killLoop('commit', async (rng, round, label) => {
    const seed = round + 1
    await changed(seed)
    // half the kill points fall in the commit itself, the rest anywhere in prepare + writes + commit
    const { lines, delay } = await runAndKill(['commit', t.path, 'base0_r0', `c${seed}_r${round}`, String(seed)], [{ after: 'ready', span: total }, { after: 'committing', span: commitSpan }], rng, 'commit')
    await checkStore(t, `${label} (${delay})`, doneNames(lines), async (store) => {
      for await (const s of store.walk({ kind: 'active' })) await store.remove(s.name)
      await keepNewest(store, 3, (n) => n.startsWith('c'), t)
    })
  })
  await finalCheck(t, `seed ${SEED}, commit, final`)
})

test('crash: gc (sweep and repack) killed at random points', { timeout: 600_000 }, async () => {
  for (let i = 0; i < 9; i++) await tree(i)
  const t: Tracked = { path: join(root, 'gc-store'), sourceOf: (n) => trees.get(treeOf(n))!, known: new Set() }
  // Each round snapshots two trees in one process (one pack), then removes one of the previous
  // round's (its pack is then about half dead: gc rewrites it when less than half is live) and
  // the older ones (their packs, or the copies an earlier gc made, are dead: gc deletes them).
  const setup = async (round: number): Promise<void> => {
    const store = await Store.open({ path: t.path, cacheBytes: 32 << 20 })
    try {
      for (let j = 0; j < 2; j++) {
        const k = (2 * round + j) % 9
        await store.snapshotDir(trees.get(k)!, { name: `g${k}_r${round}_${j}` })
      }
      for await (const s of store.walk({ kind: 'committed' })) {
        const m = /_r(\d+)_(\d)$/.exec(s.name)!
        const [r, j] = [Number(m[1]), Number(m[2])]
        if ((r === round - 1 && j > 0) || r < round - 1) {
          await store.remove(s.name)
          t.known.delete(s.name)
        }
      }
    } finally {
      await store.close()
    }
    // what setup committed is checked out after the kill, with the rest
  }
  await setup(0)
  await setup(1)
  const measured = await new Driver(['gc', t.path]).finish()
  const span = doneMs(measured)
  await checkStore(t, 'gc, measured run', [])
  await killLoop('gc', async (rng, round, label) => {
    await setup(round + 1)
    const { delay } = await runAndKill(['gc', t.path], [{ after: 'ready', span }], rng, 'gc')
    await checkStore(t, `${label} (${delay})`, [])
  })
  await finalCheck(t, `seed ${SEED}, gc, final`)
})

test('crash: OCI layer import killed at random points', { timeout: 600_000 }, async () => {
  const tars: string[] = []
  {
    const scratch = await Store.open({ path: join(root, 'export-store') })
    try {
      for (let k = 0; k < 3; k++) {
        await scratch.snapshotDir(await tree(k), { name: `t${k}` })
        const tar = join(root, `layer${k}.tar${k === 2 ? '.gz' : ''}`)
        await scratch.exportLayer(`t${k}`, tar, { format: 'oci', flatten: true })
        tars.push(tar)
      }
    } finally {
      await scratch.close()
    }
  }
  const t: Tracked = { path: join(root, 'import-store'), sourceOf: (n) => trees.get(treeOf(n))!, known: new Set() }
  const measured = await new Driver(['import', t.path, tars[0], 'o0_r0']).finish()
  await checkStore(t, 'import, measured run', doneNames(measured))
  const span = doneMs(measured)
  await killLoop('import', async (rng, round, label) => {
    const k = round % 3
    const { lines, delay } = await runAndKill(['import', t.path, tars[k], `o${k}_r${round}`, '--loop'], [{ after: 'ready', span }], rng, 'import')
    await checkStore(t, `${label} (${delay})`, doneNames(lines), (store) => keepNewest(store, 3, () => true, t))
  })
  await finalCheck(t, `seed ${SEED}, import, final`)
})

// ---- writes through a read-write FUSE mount, its daemon killed ----

function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'FUSE mounts need root'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  return undefined
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(args[0], args.slice(1), { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr })
    })
  })
}

const mountedAt = (mnt: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt)

/** The daemon serving `mnt`, from the mount records in the runtime dir. */
function daemonPidOf(runtime: string, mnt: string): number {
  const dir = join(runtime, 'mounts')
  for (const n of readdirSync(dir)) {
    const rec = JSON.parse(readFileSync(join(dir, n), 'utf8')) as { mountpoint: string; pid: number }
    if (rec.mountpoint === mnt) return rec.pid
  }
  throw new Error(`no mount record for ${mnt}`)
}

/** After a test: `mnt` lazily unmounted if still there, and every daemon the runtime dir records killed. */
async function dropMounts(runtime: string, mnt: string, env: NodeJS.ProcessEnv): Promise<void> {
  if (mountedAt(mnt)) await run(['umount', '-l', mnt], env).catch(() => undefined)
  for (const n of existsSync(join(runtime, 'mounts')) ? readdirSync(join(runtime, 'mounts')) : []) {
    try {
      const pid = (JSON.parse(readFileSync(join(runtime, 'mounts', n), 'utf8')) as { pid: number }).pid
      if (processAlive(pid)) process.kill(pid, 'SIGKILL')
    } catch { /* gone */ }
  }
}

/**
 * One kill round of a writer in a read-write mount: the writer starts on `dir`, the daemon `pid`
 * is killed at a seeded point of the measured round's span, the writer is waited for (it fails
 * once the daemon is gone) and the mount cleared. Returns the delay, for the round's label.
 */
async function killDaemonWhileWriting(kind: Kind, rng: Rng, span: number, pid: number, writerArgs: string[], mnt: string, umount: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const writer = new Driver(['writer', ...writerArgs])
  const s = statsOf(kind)
  s.tried++
  const delay = Math.round((rng.next() / 2 ** 32) * span)
  const ready = await writer.line((l) => l === 'ready')
  if (ready) await sleep(Math.max(0, delay - (performance.now() - ready.at)))
  const wasWriting = writer.running
  process.kill(pid, 'SIGKILL')
  for (let i = 0; processAlive(pid) && i < 400; i++) await sleep(25)
  if (wasWriting) s.killed++
  else s.finished++
  // the writer fails with ENOTCONN once the daemon is gone
  await Promise.race([writer.exited, sleep(30_000)])
  await writer.kill()
  const u = await run(umount, env)
  if (u.code !== 0 || mountedAt(mnt)) await run(['umount', '-l', mnt], env)
  return delay
}

test('crash: the daemon of a read-write mount killed while files are written and fsynced', { timeout: 600_000 }, async (t) => {
  const reason = cannotMount()
  if (reason) {
    console.log(`crash harness: FUSE part skipped: ${reason}`)
    return t.skip(reason)
  }
  const base = join(root, 'fuse')
  const store = join(base, 'store')
  const runtime = join(base, 'run')
  const mnt = join(base, 'mnt')
  await mkdir(mnt, { recursive: true })
  const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
  const strata = async (...args: string[]): Promise<string> => {
    const r = await run([process.execPath, BIN, '--store', store, ...args], env)
    assert.equal(r.code, 0, `strata ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  /** Files of the measured round; in the others the writer goes on until the daemon is killed. */
  const COUNT = 24
  /** Files acknowledged (fsync and close returned) by round, checked after every kill. */
  const acked = new Map<number, string[]>()
  const check = async (label: string): Promise<void> => {
    const s = await Store.open({ path: store, cacheBytes: 32 << 20 })
    try {
      const fs = s.fs('work')
      for (const [round, names] of acked) {
        for (const name of names) {
          const got = await fs.readFile(`/r${round}/${name}`).catch((err: Error) => err)
          assert.ok(Buffer.isBuffer(got), `${label}: acknowledged /r${round}/${name} is gone: ${String(got)}`)
          assert.ok(got.equals(writerFile(SEED, round, Number(name.slice(1)))), `${label}: acknowledged /r${round}/${name} has other bytes (${got.length} bytes)`)
        }
      }
      const fsck = await s.fsck({ verifyData: true })
      assert.ok(fsck.ok, `${label}: fsck --verify-data: ${fsck.problems.join('; ')}`)
      // older rounds are removed, so that gc has work and the store stays small
      for (const round of [...acked.keys()].filter((r) => r < Math.max(...acked.keys()) - 1)) {
        for (const name of await fs.readdir(`/r${round}`)) await fs.unlink(`/r${round}/${name}`)
        await fs.rmdir(`/r${round}`)
        acked.delete(round)
      }
      const report = await s.gc()
      assert.equal(report.orphansRemoved, 0, `${label}: gc found orphans`)
      assert.deepEqual(await importKeys(s), [])
      assert.ok((await s.fsck()).ok, `${label}: fsck after gc`)
    } finally {
      await s.close()
    }
  }
  const logOf = (round: number): string => join(base, `acked-${round}.log`)
  const ackedIn = (round: number): string[] => (existsSync(logOf(round)) ? readFileSync(logOf(round), 'utf8').split('\n').filter(Boolean) : [])

  try {
    {
      const s = await Store.open({ path: store })
      await s.snapshotDir(await tree(0), { name: 'base' })
      await s.prepare('work', 'base')
      await s.close()
    }
    // the measured round: written to the end, unmounted cleanly
    await strata('mount', '--rw', 'work', mnt)
    const measured = await new Driver(['writer', join(mnt, 'r0'), logOf(0), String(SEED), '0', String(COUNT)]).finish()
    const span = doneMs(measured)
    await strata('umount', mnt)
    acked.set(0, ackedIn(0))
    assert.equal(acked.get(0)!.length, COUNT)
    await check('fuse write, measured run')

    await killLoop('fuse write', async (rng, round, label) => {
      await strata('mount', '--rw', 'work', mnt)
      const writerArgs = [join(mnt, `r${round}`), logOf(round), String(SEED), String(round), 'forever']
      const delay = await killDaemonWhileWriting('fuse write', rng, span, daemonPidOf(runtime, mnt), writerArgs, mnt, [process.execPath, BIN, '--store', store, 'umount', mnt], env)
      acked.set(round, ackedIn(round))
      await check(`${label} (${delay} ms after the writer's 'ready', ${acked.get(round)!.length} files acknowledged)`)
    })

    // the active snapshot committed and checked out holds every acknowledged file
    {
      const s = await Store.open({ path: store })
      try {
        await s.commit('written', 'work')
        const out = join(base, 'out')
        await s.checkout('written', out)
        for (const [round, names] of acked) {
          for (const name of names) assert.ok(readFileSync(join(out, `r${round}`, name)).equals(writerFile(SEED, round, Number(name.slice(1)))), `r${round}/${name} after commit and checkout`)
        }
        assert.ok((await s.fsck({ verifyData: true })).ok)
      } finally {
        await s.close()
      }
    }
  } finally {
    await dropMounts(runtime, mnt, env)
  }
})

/** The tree at a mount or host dir without the writer's round dirs and the root's own attributes. */
function withoutRounds(tree: Tree): Tree {
  const isRound = (p: string): boolean => /^\/r\d+(\/|$)/.test(p)
  const entries = Object.fromEntries(Object.entries(tree.entries).filter(([p]) => p !== '/' && !isRound(p)))
  return { ...tree, entries, links: tree.links.filter((g) => !g.some(isRound)) }
}

const kernelOverlay = (): boolean => readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t')[1] === 'overlay')

test('crash: the daemon of a read-write directory-layer mount killed while files are written and fsynced', { timeout: 600_000 }, async (t) => {
  const reason = cannotMount()
  if (reason) {
    console.log(`crash harness: FUSE directory-layer part skipped: ${reason}`)
    return t.skip(reason)
  }
  const base = join(root, 'fuse-dirs')
  const lower = await tree(0)
  const upper = join(base, 'upper')
  const work = join(base, 'work')
  const runtime = join(base, 'run')
  const mnt = join(base, 'mnt')
  await Promise.all([upper, work, mnt].map((d) => mkdir(d, { recursive: true })))
  const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
  const opts = `lowerdir=${lower},upperdir=${upper},workdir=${work}`
  const strata = async (...args: string[]): Promise<void> => {
    const r = await run([process.execPath, BIN, ...args], env)
    assert.equal(r.code, 0, `strata ${args.join(' ')}: ${r.stderr}`)
  }
  const COUNT = 24
  const acked = new Map<number, string[]>()
  const lowerTree = withoutRounds(await readTree(lower))
  /** Every acknowledged file under `dir` (the upper dir, or a mount of the stack) with its bytes. */
  const checkAcked = (dir: string, label: string): void => {
    for (const [round, names] of acked) {
      for (const name of names) {
        const path = join(dir, `r${round}`, name)
        assert.ok(existsSync(path), `${label}: acknowledged r${round}/${name} is not in ${dir}`)
        const got = readFileSync(path)
        assert.ok(got.equals(writerFile(SEED, round, Number(name.slice(1)))), `${label}: acknowledged r${round}/${name} in ${dir} has other bytes (${got.length} bytes)`)
      }
    }
  }
  /** The stack mounted again by Strata: every acknowledged file and the whole lower tree are there. */
  const checkRemount = async (label: string): Promise<void> => {
    checkAcked(mnt, `${label}, remounted`)
    assert.deepEqual(diffTrees(lowerTree, withoutRounds(await readTree(mnt))), [], `${label}, remounted: the lower tree seen through the mount`)
  }
  const logOf = (round: number): string => join(base, `acked-${round}.log`)
  const ackedIn = (round: number): string[] => (existsSync(logOf(round)) ? readFileSync(logOf(round), 'utf8').split('\n').filter(Boolean) : [])

  try {
    // the measured round: written to the end, unmounted cleanly
    await strata('mount', '-o', opts, mnt)
    const measured = await new Driver(['writer', join(mnt, 'r0'), logOf(0), String(SEED), '0', String(COUNT)]).finish()
    const span = doneMs(measured)
    await strata('umount', mnt)
    acked.set(0, ackedIn(0))
    assert.equal(acked.get(0)!.length, COUNT)
    checkAcked(upper, 'fuse write (dirs), measured run')

    await killLoop('fuse write (dirs)', async (rng, round, label) => {
      // the remount after the previous kill: what was acknowledged before is served again
      await strata('mount', '-o', opts, mnt)
      await checkRemount(label)
      // older rounds are removed through the mount, so that the upper dir stays small
      for (const r of [...acked.keys()].filter((r) => r < Math.max(...acked.keys()) - 1)) {
        await rm(join(mnt, `r${r}`), { recursive: true })
        assert.ok(!existsSync(join(upper, `r${r}`)), `${label}: r${r} removed through the mount is still in the upper dir`)
        acked.delete(r)
      }
      const writerArgs = [join(mnt, `r${round}`), logOf(round), String(SEED), String(round), 'forever']
      const delay = await killDaemonWhileWriting('fuse write (dirs)', rng, span, daemonPidOf(runtime, mnt), writerArgs, mnt, [process.execPath, BIN, 'umount', mnt], env)
      acked.set(round, ackedIn(round))
      // right after the kill, before anything mounts the stack again: the files are in the upper dir
      checkAcked(upper, `${label} (${delay} ms after the writer's 'ready', ${acked.get(round)!.length} files acknowledged), upper dir after the kill`)
    })

    // a last remount by Strata, then the kernel's overlayfs mounts what the killed daemons left
    await strata('mount', '-o', opts, mnt)
    await checkRemount(`seed ${SEED}, fuse write (dirs), final`)
    await strata('umount', mnt)
    if (kernelOverlay()) {
      const r = await run(['mount', '-t', 'overlay', 'overlay', '-o', opts, mnt], env)
      assert.equal(r.code, 0, `kernel overlayfs mount of the upper dir the killed daemons left: ${r.stderr}`)
      try {
        checkAcked(mnt, `seed ${SEED}, fuse write (dirs), kernel overlayfs`)
        assert.deepEqual(diffTrees(lowerTree, withoutRounds(await readTree(mnt))), [], 'the lower tree seen through kernel overlayfs')
      } finally {
        await run(['umount', mnt], env)
      }
    } else {
      console.log('crash harness: no kernel overlayfs here: the upper dir is not mounted by the kernel')
    }
  } finally {
    await dropMounts(runtime, mnt, env)
  }
})
