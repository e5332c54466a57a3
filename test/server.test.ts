import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Store, FsError } from '../engine/index.js'
import { CliServer } from '../engine/cli/server.js'
import { storeSocketPath } from '../engine/cli/runtime.js'
import { patternBytes } from './helpers.js'

/**
 * The store server: while one process holds a store (a mount daemon), every other strata
 * command on that store runs in that process, with the client's cwd, output and exit status.
 * These tests hold the store in the test process, so a command that opened the store itself
 * would fail on its lock: each success shows the command went through the socket.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

interface Run {
  code: number
  stdout: Buffer
  stderr: string
}

function strata(args: string[], opts: { cwd?: string; runtime: string }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: opts.runtime }
    execFile(process.execPath, [BIN, ...args], { cwd: opts.cwd, env, encoding: 'buffer', maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr: stderr.toString('utf8') })
    })
  })
}

async function ok(args: string[], opts: { cwd?: string; runtime: string }): Promise<string> {
  const r = await strata(args, opts)
  assert.equal(r.code, 0, `strata ${args.join(' ')} failed: ${r.stderr}`)
  assert.equal(r.stderr, '')
  return r.stdout.toString('utf8')
}

interface Served {
  root: string
  storePath: string
  runtime: string
  store: Store
  server: CliServer
}

interface Dirs {
  root: string
  storePath: string
  runtime: string
}

/** A temporary root holding a store path and a private runtime dir, which STRATA_RUNTIME_DIR names meanwhile. */
async function withRuntimeDir(fn: (d: Dirs) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'strata-server-'))
  const dirs = { root, storePath: join(root, 'store'), runtime: join(root, 'run') }
  const saved = process.env.STRATA_RUNTIME_DIR
  process.env.STRATA_RUNTIME_DIR = dirs.runtime
  try {
    await mkdir(dirs.runtime, { mode: 0o700 })
    await fn(dirs)
  } finally {
    if (saved === undefined) delete process.env.STRATA_RUNTIME_DIR
    else process.env.STRATA_RUNTIME_DIR = saved
    await rm(root, { recursive: true, force: true })
  }
}

/** A store with snapshot `base` (a 3 MiB file among others) and active `work`, held and served by this process. */
async function withServedStore(fn: (s: Served) => Promise<void>): Promise<void> {
  await withRuntimeDir(async ({ root, storePath, runtime }) => {
    const store = await Store.open({ path: storePath })
    let server: CliServer | undefined
    try {
      await store.prepare('w0')
      const fs = store.fs('w0')
      await fs.writeFile('/hello.txt', 'hello\n')
      await fs.writeFile('/big.bin', patternBytes(3 << 20, 7))
      await store.commit('base', 'w0')
      await store.prepare('work', 'base')
      server = await CliServer.listen({ store, socketPath: storeSocketPath(storePath) })
      await fn({ root, storePath, runtime, store, server })
    } finally {
      if (server) {
        await server.stop()
        server.close()
      }
      await store.close()
    }
  })
}

/** A store holding an empty committed snapshot `base`, open in this process. */
async function storeWithBase(storePath: string): Promise<Store> {
  const store = await Store.open({ path: storePath })
  await store.prepare('w0')
  await store.commit('base', 'w0')
  return store
}

test('commands on a served store run in the server, with host paths from the client cwd', { timeout: 120_000 }, () =>
  withServedStore(async ({ root, storePath, runtime, store }) => {
    const work = join(root, 'work')
    await mkdir(join(work, 'tree', 'sub'), { recursive: true })
    await writeFile(join(work, 'tree', 'sub', 'f.txt'), 'from the client cwd\n')

    // a relative host path, given from a cwd that is not the server's
    assert.equal(await ok(['--store', storePath, 'snapshot', 'tree', '--name', 't1', '--parent', 'base'], { cwd: work, runtime }), "created snapshot 't1'\n")
    assert.equal(await store.fs('t1').readFile('/sub/f.txt', 'utf8'), 'from the client cwd\n')

    await ok(['--store', storePath, 'checkout', 't1', 'out'], { cwd: work, runtime })
    assert.equal(await readFile(join(work, 'out', 'sub', 'f.txt'), 'utf8'), 'from the client cwd\n')

    // --store relative to the client's cwd finds the same server
    const listed = JSON.parse(await ok(['--store', basename(storePath), '--json', 'snapshots'], { cwd: dirname(storePath), runtime })) as { name: string }[]
    assert.deepEqual(listed.map((s) => s.name).sort(), ['base', 't1', 'work'])

    // large output streams through whole, several clients at once
    const cats = await Promise.all([1, 2, 3].map(() => strata(['--store', storePath, 'cat', 'base', '/big.bin'], { runtime })))
    for (const r of cats) {
      assert.equal(r.code, 0, r.stderr)
      assert.ok(r.stdout.equals(patternBytes(3 << 20, 7)), 'cat output differs from the file')
    }

    // failures keep their exit status and one-line message
    const missing = await strata(['--store', storePath, 'ls', 'nosuch'], { runtime })
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^strata: ENOENT: no snapshot 'nosuch'/)
    assert.equal(missing.stderr.trimEnd().split('\n').length, 1)
    const usage = await strata(['--store', storePath, 'commit', 'only-one'], { runtime })
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /^strata: missing required argument 'key'/)
  }),
)

test('a held key is refused to commit and rm with the holder named; other keys are not', { timeout: 60_000 }, () =>
  withServedStore(async ({ storePath, runtime, store }) => {
    const release = store.hold('work', "is mounted read-write at /mnt/w; run 'strata umount /mnt/w' first")
    assert.throws(() => store.hold('work', 'again'), (err: unknown) => err instanceof FsError && err.code === 'EBUSY' && /mounted read-write at \/mnt\/w/.test(err.message))
    assert.throws(() => store.hold('work', 'shared', { shared: true }), (err: unknown) => err instanceof FsError && err.code === 'EBUSY')

    const refused = await strata(['--store', storePath, 'commit', 'done', 'work'], { runtime })
    assert.equal(refused.code, 1)
    assert.equal(refused.stderr, "strata: EBUSY: 'work' is mounted read-write at /mnt/w; run 'strata umount /mnt/w' first, commit 'work'\n")
    assert.equal((await strata(['--store', storePath, 'rm', 'work'], { runtime })).code, 1)
    assert.equal((await store.stat('work')).kind, 'active', 'nothing changed')

    // shared holds admit each other, and keep the snapshot from being removed
    const r1 = store.hold('base', 'is mounted at /a', { shared: true })
    const r2 = store.hold('base', 'is mounted at /b', { shared: true })
    await store.prepare('other', 'base')
    assert.equal(await ok(['--store', storePath, 'commit', 'other-done', 'other'], { runtime }), "committed 'other' as 'other-done'\n")
    r1()
    r2()

    release()
    release() // releasing twice is harmless
    assert.equal(await ok(['--store', storePath, 'commit', 'done', 'work'], { runtime }), "committed 'work' as 'done'\n")
  }),
)

test('the runtime dir is private and the socket named by a hash of the store path', { timeout: 30_000 }, () =>
  withServedStore(async ({ storePath, runtime, server }) => {
    assert.equal(statSync(runtime).mode & 0o777, 0o700)
    assert.equal(statSync(server.socketPath).mode & 0o777, 0o600)
    assert.equal(dirname(server.socketPath), runtime)
    assert.match(basename(server.socketPath), /^store-[0-9a-f]{16}\.sock$/)
    assert.equal(storeSocketPath(join(storePath, '.', '')), server.socketPath, 'the same store gives the same socket')
  }),
)

test('a stopping server sends clients to the store itself once it lets go', { timeout: 60_000 }, () =>
  withRuntimeDir(async ({ storePath, runtime }) => {
    const store = await storeWithBase(storePath)
    const server = await CliServer.listen({ store, socketPath: storeSocketPath(storePath) })
    await server.stop()
    const client = strata(['--store', storePath, 'snapshots'], { runtime })
    // the client is answered "retry" and waits for the store; the server lets go of it meanwhile
    await new Promise((r) => setTimeout(r, 300))
    server.close()
    await store.close()
    const r = await client
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout.toString(), /^base\s+committed/m)
  }),
)

test('a socket left by a server that died is removed, and the command runs on the store', { timeout: 60_000 }, () =>
  withRuntimeDir(async ({ storePath, runtime }) => {
    await (await storeWithBase(storePath)).close()
    const socketPath = storeSocketPath(storePath)
    // a process listening on the socket, killed so that it cannot remove it
    const script = `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('listening'))`
    const holder = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await once(holder.stdout!, 'data')
    holder.kill('SIGKILL')
    await once(holder, 'exit')
    assert.ok(existsSync(socketPath), 'the dead server left its socket')

    const r = await strata(['--store', storePath, 'snapshots'], { runtime })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.match(r.stdout.toString(), /^base\s+committed/m)
    assert.ok(!existsSync(socketPath), 'the stale socket is gone')
  }),
)
