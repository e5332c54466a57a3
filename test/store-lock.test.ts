import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Store, StoreError } from '../engine/index.js'
import { encode } from '../engine/store/codec.js'
import { FORMAT_KEY } from '../engine/store/keys.js'

/**
 * One process at a time may open a store; a second one gets a clear error naming the holder.
 * A store written in another format version is refused with EFORMAT.
 */

const engineUrl = new URL('../engine/index.js', import.meta.url).href

/** A node process that opens the store at `path`, says 'ready', and closes it when stdin ends. */
async function holder(path: string): Promise<ChildProcess> {
  const script = `
    const { Store } = await import(${JSON.stringify(engineUrl)})
    const store = await Store.open({ path: ${JSON.stringify(path)} })
    process.stdout.write('ready\\n')
    process.stdin.resume()
    process.stdin.on('end', async () => { await store.close(); process.exit(0) })
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  for await (const chunk of child.stdout!) {
    out += String(chunk)
    if (out.includes('ready')) return child
  }
  throw new Error(`holder process ended before opening the store (exit ${child.exitCode})`)
}

async function expectStoreError(path: string, code: string, pattern: RegExp): Promise<StoreError> {
  let caught: unknown
  try {
    const s = await Store.open({ path })
    await s.close()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof StoreError, `expected a StoreError, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  assert.match(caught.message, pattern)
  return caught
}

async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
  const path = await mkdtemp(join(tmpdir(), 'strata-lock-'))
  try {
    await fn(path)
  } finally {
    await rm(path, { recursive: true, force: true })
  }
}

test('a store held by another process is refused with the holder named, and free once it exits', () => withDir(async (path) => {
  const child = await holder(path)
  try {
    const err = await expectStoreError(path, 'EBUSY', new RegExp(`process ${child.pid}\\b`))
    assert.ok(err.message.includes(path), err.message)
  } finally {
    child.stdin!.end()
    await once(child, 'exit')
  }
  assert.equal(child.exitCode, 0)
  const store = await Store.open({ path })
  await store.prepare('a')
  await store.close()
}))

test('a store whose holder was killed can be opened again', () => withDir(async (path) => {
  const child = await holder(path)
  const exited = once(child, 'exit')
  try {
    await expectStoreError(path, 'EBUSY', new RegExp(`process ${child.pid}\\b`))
  } finally {
    child.kill('SIGKILL')
    await exited
  }
  const store = await Store.open({ path })
  await store.prepare('a')
  assert.equal((await store.stat('a')).kind, 'active')
  await store.close()
}))

test('a different format version is refused with EFORMAT, and the store stays closed', () => withDir(async (path) => {
  const store = await Store.open({ path })
  await store.prepare('a')
  const txn = store.db.txn()
  txn.putRaw(FORMAT_KEY, encode({ format: 99 }))
  await txn.commit(true)
  await store.close()
  const err = await expectStoreError(path, 'EFORMAT', /format version 99/)
  assert.ok(err.message.includes(path), err.message)
  // refused without leaving the database open: a second try gets the same answer, not a lock error
  await expectStoreError(path, 'EFORMAT', /format version 99/)
}))

test('a database without a format record is not taken for a store', () => withDir(async (path) => {
  const store = await Store.open({ path })
  await store.prepare('a')
  const txn = store.db.txn()
  txn.del(FORMAT_KEY)
  await txn.commit(true)
  await store.close()
  await expectStoreError(path, 'EFORMAT', /not a Strata store/)
}))

test('a store path that is a file gives a StoreError naming it', () => withDir(async (dir) => {
  const path = join(dir, 'plain-file')
  await writeFile(path, 'not a store')
  const err = await expectStoreError(path, 'EIO', /plain-file/)
  assert.ok(err.message.includes(path), err.message)
}))

/* ---- the CLI waits for another process to close the store ---- */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

/** A CLI run on the store at `path` with a runtime dir of its own (no server to find). */
function cli(path: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, '--store', path, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: join(path, 'runtime'), ...env },
  })
}

/** Resolves once the child's stderr holds `pattern`; also collects all of it. */
function watchStderr(child: ChildProcess): { text: () => string; seen: (pattern: RegExp) => Promise<void>; exit: Promise<number> } {
  let text = ''
  const waiters: { pattern: RegExp; resolve: () => void }[] = []
  child.stderr!.on('data', (chunk) => {
    text += String(chunk)
    for (const w of waiters.filter((w) => w.pattern.test(text))) w.resolve()
  })
  const exit = once(child, 'exit').then(([code]) => code as number)
  return {
    text: () => text,
    seen: (pattern) => new Promise<void>((resolve, reject) => {
      if (pattern.test(text)) return resolve()
      waiters.push({ pattern, resolve })
      void exit.then(() => reject(new Error(`exited before printing ${pattern}: ${text}`)))
    }),
    exit,
  }
}

test('a command waits for the process holding the store, says so once, and runs when it is free', () => withDir(async (path) => {
  const child = await holder(path)
  const holderExit = once(child, 'exit')
  let released = false
  try {
    const run = cli(path, ['prepare', 'after-wait', '--wait', '120'])
    const err = watchStderr(run)
    await err.seen(/waiting/)
    assert.match(err.text(), new RegExp(`^strata: store ${path} is in use by process ${child.pid} .*; waiting up to 120 s`))
    child.stdin!.end()
    released = true
    assert.equal(await err.exit, 0, err.text())
    assert.equal(err.text().trimEnd().split('\n').length, 1, `one message while waiting: ${err.text()}`)
  } finally {
    if (!released) child.stdin!.end()
    await holderExit
  }
  const store = await Store.open({ path })
  assert.equal((await store.stat('after-wait')).kind, 'active')
  await store.close()
}))

test('a command gives up after --wait with EBUSY naming the holder; STRATA_LOCK_WAIT=0 fails at once', () => withDir(async (path) => {
  const child = await holder(path)
  try {
    const timed = watchStderr(cli(path, ['snapshots', '--wait', '0.3']))
    assert.equal(await timed.exit, 1)
    const lines = timed.text().trimEnd().split('\n')
    assert.equal(lines.length, 2, timed.text())
    assert.match(lines[0], new RegExp(`^strata: store ${path} is in use by process ${child.pid} .*; waiting up to`))
    assert.match(lines[1], new RegExp(`^strata: store ${path} is in use by process ${child.pid} .*\\(waited [\\d.]+ s\\)$`))

    const now = watchStderr(cli(path, ['snapshots'], { STRATA_LOCK_WAIT: '0' }))
    assert.equal(await now.exit, 1)
    assert.match(now.text(), new RegExp(`^strata: store ${path} is in use by process ${child.pid} [^\\n]*\\n$`))

    const bad = watchStderr(cli(path, ['snapshots', '--wait', 'soon']))
    assert.equal(await bad.exit, 2)
    assert.match(bad.text(), /'soon' is not a number of seconds/)
  } finally {
    child.stdin!.end()
    await once(child, 'exit')
  }
}))
