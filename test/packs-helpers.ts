import assert from 'node:assert/strict'
import { Store, type SnapshotInfo } from '../engine/index.js'
import { CHUNK_SIZE } from '../engine/store/chunks.js'
import { decodePointer, type PackPointer } from '../engine/store/packs.js'
import { tempStore } from './helpers.js'

/** Shared by the tests of pack files (packs.test.ts, packs-gc.test.ts). */

export const CHUNK = CHUNK_SIZE
export const MiB = 1024 * 1024

/** A committed snapshot `name` over `parent` holding `files`, each written (and so flushed) in one batch. */
export async function committed(store: Store, name: string, parent: string | undefined, files: Record<string, Buffer>): Promise<SnapshotInfo> {
  const key = `${name}.build`
  await store.prepare(key, parent)
  const fs = store.fs(key)
  for (const [p, data] of Object.entries(files)) await fs.writeFile(p, data)
  return store.commit(name, key)
}

/** Every `P/` pointer of the store, by chunk id. */
export async function pointers(store: Store): Promise<Map<string, PackPointer>> {
  const out = new Map<string, PackPointer>()
  for await (const [k, v] of store.db.scan('P/')) out.set(k.slice(2), decodePointer(v))
  return out
}

/** Chunk ids kept in LevelDB (`C/`). */
export async function inlineIds(store: Store): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const k of store.db.scanKeys('C/')) out.add(k.slice(2))
  return out
}

/** Bytes of all pack files on disk. */
export function packBytes(store: Store): number {
  return store.db.packs.list().reduce((n, p) => n + p.size, 0)
}

export function packIds(store: Store): number[] {
  return store.db.packs.list().map((p) => p.id)
}

/** The ref of a chunk stored without a collision (slot 0), as the store's keys spell it. */
export function chunkId(store: Store, body: Buffer): string {
  return store.chunks.hash(body).toString('hex') + '00'
}

/** Ids of the distinct non-hole chunks of `data`, in file order. */
export function chunkIdsOf(store: Store, data: Buffer): string[] {
  const seen = new Set<string>()
  for (let off = 0; off < data.length; off += CHUNK) {
    const c = data.subarray(off, Math.min(data.length, off + CHUNK))
    if (c.some((b) => b !== 0)) seen.add(chunkId(store, c))
  }
  return [...seen]
}

/** Reads all of `path` through one handle in steps that vary between 64 KiB and 1 MiB. */
export async function readInSteps(fs: ReturnType<Store['fs']>, path: string, size: number): Promise<Buffer> {
  const steps = [CHUNK, 100_000, 256 * 1024, MiB, 300_001, 512 * 1024 + 7]
  const out = Buffer.alloc(size, 0xaa)
  const h = await fs.open(path, 'r')
  try {
    for (let off = 0, i = 0; off < size; i++) {
      const want = Math.min(steps[i % steps.length], size - off)
      const { bytesRead } = await h.read(out, off, want, off)
      assert.equal(bytesRead, want, `read at ${off}`)
      off += want
    }
  } finally {
    await h.close()
  }
  return out
}

/** A temporary store that `fn` may close and reopen (through `reopen`); always removed afterwards. */
export async function withReopenableStore(fn: (s: { store: Store; path: string; reopen: () => Promise<Store> }) => Promise<void>): Promise<void> {
  const t = await tempStore()
  let current = t.store
  const reopen = async (): Promise<Store> => {
    await current.close()
    current = await Store.open({ path: t.path })
    return current
  }
  try {
    await fn({ get store() { return current }, path: t.path, reopen })
  } finally {
    await current.close()
    await t.cleanup()
  }
}

/** Expects fsck (with verifyData) to find nothing wrong. */
export async function assertFsckOk(store: Store): Promise<void> {
  const report = await store.fsck({ verifyData: true })
  assert.ok(report.ok, report.problems.join('\n'))
}
