import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import { Store, type StoreOptions } from '../engine/index.js'

export interface TempStore {
  store: Store
  path: string
  /** Closes the store (if still open) and deletes its directory. */
  cleanup: () => Promise<void>
}

/** A fresh store in its own temporary directory. */
export async function tempStore(opts: Omit<StoreOptions, 'path'> = {}): Promise<TempStore> {
  const path = await mkdtemp(join(tmpdir(), 'strata-test-'))
  let store: Store
  try {
    store = await Store.open({ ...opts, path })
  } catch (err) {
    await rm(path, { recursive: true, force: true })
    throw err
  }
  return {
    store,
    path,
    cleanup: async () => {
      await store.close()
      await rm(path, { recursive: true, force: true })
    },
  }
}

/** Runs `fn` with a fresh store and always removes the store afterwards. */
export async function withStore<T>(fn: (store: Store, path: string) => Promise<T>, opts: Omit<StoreOptions, 'path'> = {}): Promise<T> {
  const t = await tempStore(opts)
  try {
    return await fn(t.store, t.path)
  } finally {
    await t.cleanup()
  }
}

/** Expects `p` to reject with an error of `code`; when `path` is given, the error and its message must name it. */
export async function rejectsWith(p: Promise<unknown>, code: string, path?: string): Promise<Error & { code: string; path?: string }> {
  let caught: unknown
  try {
    await p
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof Error, `expected ${code}, but the call succeeded`)
  const err = caught as Error & { code: string; path?: string }
  assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
  if (path !== undefined) {
    assert.equal(err.path, path, `error path: ${err.message}`)
    assert.ok(err.message.includes(path), `message should name '${path}': ${err.message}`)
  }
  return err
}

/** Every key and value of the store's database, for before/after comparisons. */
export async function dumpDb(store: Store): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for await (const [k, v] of store.db.scan('')) out.set(k, v.toString('base64'))
  return out
}

/** How many chunks the store holds (in LevelDB and in packs). */
export async function countChunks(store: Store): Promise<number> {
  let n = 0
  for (const prefix of ['C/', 'P/']) for await (const _ of store.db.scanKeys(prefix)) n++
  return n
}

/** Deterministic bytes that differ for every `seed` (so chunks do not dedup by accident). */
export function patternBytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  let x = (seed * 2654435761 + 1) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    // xorshift32: cheap and never repeats within a chunk
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

/** A temporary host directory for the duration of `fn`, removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
