import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
