import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, mkdir, readFile, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Store } from '../engine/index.js'
import { patternBytes } from './helpers.js'

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const ENGINE = new URL('../engine/index.js', import.meta.url).href

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI and collects its exit status and output; never rejects on a non-zero exit. */
function strata(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return strataRaw(args, env).then((r) => ({ ...r, stdout: r.stdout.toString('utf8') }))
}

function strataRaw(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, STRATA_DEBUG: '', ...env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr: stderr.toString('utf8') })
    })
  })
}

/** The CLI's output as one successful command: exit 0, nothing on stderr. */
async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await strata(args, env)
  assert.equal(r.code, 0, `strata ${args.join(' ')} failed: ${r.stderr}`)
  assert.equal(r.stderr, '')
  return r.stdout
}

async function okJson<T>(args: string[]): Promise<T> {
  return JSON.parse(await ok([...args, '--json'])) as T
}

/** A failure reported as exactly one `strata: …` line, without a stack trace. */
function assertOneLineError(r: Run, code: number, ...mentions: string[]): void {
  assert.equal(r.code, code, `expected exit ${code}; stderr: ${r.stderr}`)
  const lines = r.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0], /^strata: /)
  for (const m of mentions) assert.ok(lines[0].includes(m), `'${lines[0]}' should mention '${m}'`)
}

const tempDir = (prefix: string): Promise<string> => mkdtemp(join(tmpdir(), prefix))

/** Fills a store through the library: `base` with a few files, `child` active on it. */
async function populate(path: string): Promise<void> {
  const store = await Store.open({ path })
  try {
    await store.prepare('work')
    const fs = store.fs('work')
    await fs.mkdir('/etc', 0o755)
    await fs.writeFile('/etc/hosts', '127.0.0.1 localhost\n', { mode: 0o644 })
    await fs.writeFile('/blob', patternBytes(200_000, 1), { mode: 0o600 })
    await fs.lchown('/blob', 1000, 100)
    await fs.symlink('etc/hosts', '/hosts-link')
    await store.commit('base', 'work')
    await store.prepare('child', 'base')
  } finally {
    await store.close()
  }
}

interface ListedSnapshot {
  name: string
  kind: string
  parent: string
  labels: Record<string, string>
  created: number
  size: number
}

interface LsEntry {
  name: string
  type: string
  mode: number
  uid: number
  gid: number
  size: number
  target?: string
}

describe('strata CLI: program', () => {
  it('lists its commands in --help', async () => {
    const help = await ok(['--help'])
    for (const cmd of ['snapshot', 'snapshots', 'ls', 'cat', 'stat', 'diff', 'checkout', 'prepare', 'view', 'commit', 'rm', 'usage', 'gc', 'fsck']) {
      assert.match(help, new RegExp(`^  ${cmd}\\b`, 'm'), `help should list ${cmd}`)
    }
  })

  it('prints the package version for --version', async () => {
    const pkg = JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }
    assert.equal((await ok(['--version'])).trim(), pkg.version)
  })

  it('rejects an unknown command with a usage error', async () => {
    const r = await strata(['frobnicate'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /^strata: unknown command 'frobnicate'/)
  })

  it('rejects a missing argument with a usage error', async () => {
    const r = await strata(['commit', 'only-one'])
    assertOneLineError(r, 2, 'key')
  })
})

describe('strata CLI: snapshots and files', () => {
  let store: string
  before(async () => {
    store = join(await tempDir('strata-cli-'), 'store')
    await populate(store)
  })
  after(async () => rm(join(store, '..'), { recursive: true, force: true }))

  it('lists snapshots as JSON with kind, parent and size', async () => {
    const list = await okJson<ListedSnapshot[]>(['--store', store, 'snapshots'])
    const byName = new Map(list.map((s) => [s.name, s]))
    assert.deepEqual([...byName.keys()].sort(), ['base', 'child'])
    assert.equal(byName.get('base')?.kind, 'committed')
    assert.equal(byName.get('base')?.parent, '')
    assert.ok((byName.get('base')?.size ?? 0) >= 200_000, 'base holds the blob')
    assert.equal(byName.get('child')?.kind, 'active')
    assert.equal(byName.get('child')?.parent, 'base')
    assert.equal(byName.get('child')?.size, 0)
  })

  it('filters snapshots by kind and parent, and prints a table by default', async () => {
    const committed = await okJson<ListedSnapshot[]>(['--store', store, 'snapshots', '--kind', 'committed'])
    assert.deepEqual(committed.map((s) => s.name), ['base'])
    const children = await okJson<ListedSnapshot[]>(['--store', store, 'snapshots', '--parent', 'base'])
    assert.deepEqual(children.map((s) => s.name), ['child'])
    const table = (await ok(['--store', store, 'snapshots'])).trimEnd().split('\n')
    assert.match(table[0], /^NAME\s+KIND\s+PARENT\s+SIZE\s+CREATED$/)
    assert.match(table[1], /^base\s+committed\s+-\s+/)
    assert.match(table[2], /^child\s+active\s+base\s+0 B\s+/)
  })

  it('takes the store from $STRATA_STORE when --store is not given', async () => {
    const list = JSON.parse(await ok(['snapshots', '--json'], { STRATA_STORE: store })) as ListedSnapshot[]
    assert.equal(list.length, 2)
  })

  it('ls shows modes, owners, sizes and symlink targets', async () => {
    const lines = (await ok(['--store', store, 'ls', 'base'])).trimEnd().split('\n')
    assert.equal(lines.length, 3)
    assert.match(lines[0], /^-rw-------\s+1000\s+100\s+200000\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+blob$/)
    assert.match(lines[1], /^drwxr-xr-x\s+0\s+0\s+4096\s+.*\setc$/)
    assert.match(lines[2], /^lrwxrwxrwx\s+0\s+0\s+9\s+.*\shosts-link -> etc\/hosts$/)
  })

  it('ls --json lists a subdirectory', async () => {
    const entries = await okJson<LsEntry[]>(['--store', store, 'ls', 'child', '/etc'])
    assert.deepEqual(entries.map((e) => [e.name, e.type, e.mode & 0o7777, e.size]), [['hosts', 'file', 0o644, 20]])
  })

  it('cat writes file contents byte for byte', async () => {
    assert.equal(await ok(['--store', store, 'cat', 'base', '/etc/hosts']), '127.0.0.1 localhost\n')
    const blob = await strataRaw(['--store', store, 'cat', 'child', '/blob'])
    assert.equal(blob.code, 0, blob.stderr)
    assert.ok(blob.stdout.equals(patternBytes(200_000, 1)))
  })

  it('cat of a directory fails with one line naming it', async () => {
    assertOneLineError(await strata(['--store', store, 'cat', 'base', '/etc']), 1, 'EISDIR', '/etc')
  })

  it('stat reports lstat fields, as text and JSON', async () => {
    const text = await ok(['--store', store, 'stat', 'base', '/blob'])
    assert.match(text, /^mode:\s+0600 \(-rw-------\)$/m)
    assert.match(text, /^uid:\s+1000$/m)
    assert.match(text, /^size:\s+200000$/m)
    const link = await okJson<LsEntry & { path: string; nlink: number }>(['--store', store, 'stat', 'base', '/hosts-link'])
    assert.equal(link.type, 'symlink')
    assert.equal(link.target, 'etc/hosts')
    assert.equal(link.path, '/hosts-link')
  })

  it('names the missing snapshot in a one-line error and exits 1', async () => {
    assertOneLineError(await strata(['--store', store, 'ls', 'no-such-snap']), 1, 'no-such-snap')
    assertOneLineError(await strata(['--store', store, 'cat', 'no-such-snap', '/etc/hosts', '--json']), 1, 'no-such-snap')
  })

  it('names a missing path in a one-line error', async () => {
    assertOneLineError(await strata(['--store', store, 'stat', 'base', '/nope']), 1, 'ENOENT', '/nope')
  })

  it('usage reports the size of a snapshot\'s own layer', async () => {
    const usage = await okJson<{ size: number; inodes: number }>(['--store', store, 'usage', 'base'])
    assert.ok(usage.size >= 200_000)
    assert.ok(usage.inodes >= 4)
  })
})

describe('strata CLI: lifecycle and maintenance', () => {
  let store: string
  before(async () => {
    store = join(await tempDir('strata-cli-'), 'store')
    await populate(store)
  })
  after(async () => rm(join(store, '..'), { recursive: true, force: true }))

  it('prepare, commit, view and rm move snapshots through their lifecycle', async () => {
    const prepared = await okJson<ListedSnapshot>(['--store', store, 'prepare', 'next', 'base'])
    assert.deepEqual([prepared.name, prepared.kind, prepared.parent], ['next', 'active', 'base'])
    const committed = await okJson<ListedSnapshot>(['--store', store, 'commit', 'release', 'next'])
    assert.deepEqual([committed.name, committed.kind, committed.parent], ['release', 'committed', 'base'])
    assert.match(await ok(['--store', store, 'view', 'look', 'release']), /look/)
    assert.equal((await ok(['--store', store, 'cat', 'look', '/etc/hosts'])), '127.0.0.1 localhost\n')
    const names = async (): Promise<string[]> => (await okJson<ListedSnapshot[]>(['--store', store, 'snapshots'])).map((s) => s.name).sort()
    assert.deepEqual(await names(), ['base', 'child', 'look', 'release'])
    assert.match(await ok(['--store', store, 'rm', 'look']), /removed 'look'/)
    await ok(['--store', store, 'rm', 'release'])
    assert.deepEqual(await names(), ['base', 'child'])
  })

  it('prepare on the empty tree, then commit of an empty layer', async () => {
    await ok(['--store', store, 'prepare', 'scratch'])
    assert.deepEqual(await okJson<LsEntry[]>(['--store', store, 'ls', 'scratch']), [])
    await ok(['--store', store, 'commit', 'empty', 'scratch'])
    await ok(['--store', store, 'rm', 'empty'])
  })

  it('refuses to remove a snapshot that has children, in one line', async () => {
    assertOneLineError(await strata(['--store', store, 'rm', 'base']), 1, 'base', 'child')
  })

  it('gc reclaims the data of removed snapshots', async () => {
    await ok(['--store', store, 'prepare', 'doomed'])
    const setup = await Store.open({ path: store })
    try {
      await setup.fs('doomed').writeFile('/big', patternBytes(300_000, 7))
    } finally {
      await setup.close()
    }
    await ok(['--store', store, 'rm', 'doomed'])
    const report = await okJson<{ chunksRemoved: number; bytesRemoved: number; layersRemoved: number }>(['--store', store, 'gc'])
    assert.ok(report.chunksRemoved >= 1, JSON.stringify(report))
    assert.ok(report.bytesRemoved >= 300_000, JSON.stringify(report))
    assert.match(await ok(['--store', store, 'gc']), /^chunks removed\s+0 \(0 B\)$/m)
  })

  it('fsck passes on a healthy store', async () => {
    assert.match(await ok(['--store', store, 'fsck', '--verify-data']), /^ok: checked \d+ snapshots/)
    const report = await okJson<{ ok: boolean; problems: string[] }>(['--store', store, 'fsck'])
    assert.deepEqual([report.ok, report.problems], [true, []])
  })

  it('fsck lists problems and exits 1 when a chunk is missing', async () => {
    const broken = join(await tempDir('strata-cli-'), 'store')
    try {
      await populate(broken)
      const s = await Store.open({ path: broken })
      try {
        const txn = s.db.txn()
        for await (const key of s.db.scanKeys('C/')) txn.del(key)
        await txn.commit(true)
      } finally {
        await s.close()
      }
      const r = await strata(['--store', broken, 'fsck', '--json'])
      assert.equal(r.code, 1, r.stderr)
      const report = JSON.parse(r.stdout) as { ok: boolean; problems: string[] }
      assert.equal(report.ok, false)
      assert.ok(report.problems.length > 0)
      assertOneLineError(r, 1, 'fsck found')
      const text = await strata(['--store', broken, 'fsck'])
      assert.equal(text.code, 1)
      for (const problem of report.problems) assert.ok(text.stdout.includes(problem), `text output should list: ${problem}`)
    } finally {
      await rm(join(broken, '..'), { recursive: true, force: true })
    }
  })
})

describe('strata CLI: host directories', () => {
  let root: string
  let store: string
  let source: string
  before(async () => {
    root = await tempDir('strata-cli-')
    store = join(root, 'store')
    source = join(root, 'project')
    await mkdir(join(source, 'sub'), { recursive: true })
    await writeFile(join(source, 'a.txt'), 'first version\n')
    await writeFile(join(source, 'sub', 'b.bin'), patternBytes(150_000, 3))
    await symlink('a.txt', join(source, 'link'))
  })
  after(async () => rm(root, { recursive: true, force: true }))

  it('snapshot stores a directory under the given name and labels', async () => {
    const info = await okJson<ListedSnapshot>(['--store', store, 'snapshot', source, '--name', 'v1', '--label', 'env=test', '--label', 'team=core'])
    assert.deepEqual([info.name, info.kind, info.parent], ['v1', 'committed', ''])
    assert.deepEqual(info.labels, { env: 'test', team: 'core' })
    const names = (await okJson<LsEntry[]>(['--store', store, 'ls', 'v1'])).map((e) => e.name)
    assert.deepEqual(names, ['a.txt', 'link', 'sub'])
    assert.equal(await ok(['--store', store, 'cat', 'v1', '/a.txt']), 'first version\n')
    const blob = await strataRaw(['--store', store, 'cat', 'v1', '/sub/b.bin'])
    assert.ok(blob.stdout.equals(patternBytes(150_000, 3)))
    const labelled = await okJson<ListedSnapshot[]>(['--store', store, 'snapshots', '--label', 'env=test'])
    assert.deepEqual(labelled.map((s) => s.name), ['v1'])
  })

  it('snapshot without --name picks a unique name from the directory and prints it', async () => {
    const first = await ok(['--store', store, 'snapshot', source])
    const second = await ok(['--store', store, 'snapshot', source])
    const nameOf = (out: string): string => {
      const m = /'([^']+)'/.exec(out)
      assert.ok(m, `output should name the snapshot: ${out}`)
      return m[1]
    }
    const [a, b] = [nameOf(first), nameOf(second)]
    assert.ok(a.startsWith(`${basename(source)}-`), a)
    assert.notEqual(a, b)
    const names = (await okJson<ListedSnapshot[]>(['--store', store, 'snapshots'])).map((s) => s.name)
    assert.ok(names.includes(a) && names.includes(b))
    await ok(['--store', store, 'rm', a])
    await ok(['--store', store, 'rm', b])
  })

  it('diff lists added, modified and deleted paths between two snapshots', async () => {
    await writeFile(join(source, 'a.txt'), 'second version\n')
    await unlink(join(source, 'sub', 'b.bin'))
    await writeFile(join(source, 'c.txt'), 'new\n')
    await ok(['--store', store, 'snapshot', source, '--name', 'v2', '--parent', 'v1'])
    const lines = (await ok(['--store', store, 'diff', 'v1', 'v2'])).trimEnd().split('\n')
    assert.ok(lines.includes('M /a.txt'), lines.join('\n'))
    assert.ok(lines.includes('D /sub/b.bin'), lines.join('\n'))
    assert.ok(lines.includes('A /c.txt'), lines.join('\n'))
    assert.ok(!lines.some((l) => l.endsWith(' /link')), 'the unchanged symlink is not listed')
    const json = await okJson<{ kind: string; path: string }[]>(['--store', store, 'diff', 'v1', 'v2'])
    assert.deepEqual(json.find((c) => c.path === '/c.txt'), { kind: 'added', path: '/c.txt' })
  })

  it('checkout writes a snapshot back out to a host directory', async () => {
    const out = join(root, 'out')
    await ok(['--store', store, 'checkout', 'v2', out])
    assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'second version\n')
    assert.equal(await readFile(join(out, 'c.txt'), 'utf8'), 'new\n')
    assert.equal(await readlink(join(out, 'link')), 'a.txt')
    await assert.rejects(readFile(join(out, 'sub', 'b.bin')), { code: 'ENOENT' })
  })

  it('snapshot of a missing directory fails in one line naming it', async () => {
    const missing = join(root, 'not-there')
    assertOneLineError(await strata(['--store', store, 'snapshot', missing, '--name', 'x']), 1, missing)
  })
})

describe('strata CLI: a store held by another process', () => {
  it('names the holder pid instead of a raw lock error', async () => {
    const root = await tempDir('strata-cli-')
    const store = join(root, 'store')
    const script = `import { Store } from ${JSON.stringify(ENGINE)}\nawait Store.open({ path: ${JSON.stringify(store)} })\nconsole.log('ready')\nsetInterval(() => {}, 1 << 30)\n`
    const holder = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve() })
        holder.once('exit', (code) => reject(new Error(`holder exited early with ${code}`)))
      })
      // without waiting for the holder (store-lock.test.ts covers the wait)
      const r = await strata(['--store', store, 'snapshots'], { STRATA_LOCK_WAIT: '0' })
      assertOneLineError(r, 1, `process ${holder.pid}`, store)
      assert.doesNotMatch(r.stderr, /LEVEL_|LOCK/)
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) {
        const exited = new Promise((resolve) => holder.once('exit', resolve))
        holder.kill()
        await exited
      }
      await rm(root, { recursive: true, force: true })
    }
  })
})
