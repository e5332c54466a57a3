import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChunkHasher } from '../engine/index.js'
import { BatchPipeline } from '../engine/store/pipeline.js'
import { countChunks, patternBytes, tempStore, withStore } from './helpers.js'

const CHUNK = 64 * 1024
const collidingHasher: ChunkHasher = () => Buffer.alloc(8)
/** 256 hash values: chunks of random data collide in small groups. */
const firstByteHasher: ChunkHasher = (data) => Buffer.alloc(8, data[0] ?? 0)

describe('batches written while the next one fills', () => {
  test('a chunk in a batch still being written counts as stored', async () => {
    const t = await tempStore({ chunkHasher: collidingHasher })
    try {
      const { store } = t
      const [x, y] = [patternBytes(CHUNK, 1), patternBytes(CHUNK, 2)]
      const first = store.db.txn()
      const [refX] = await store.chunks.putMany([x], first)
      const writing = first.commit()
      const second = store.db.txn()
      second.follows(first)
      // put while `first` is being written: y must not take x's ref, and x again must reuse it
      const [refY, refX2] = await store.chunks.putMany([y, Buffer.from(x)], second)
      await writing
      await second.commit()
      assert.notDeepEqual(refY, refX)
      assert.deepEqual(refX2, refX)
      assert.ok((await store.chunks.get(refX)).equals(x))
      assert.ok((await store.chunks.get(refY)).equals(y))
      assert.equal(await countChunks(store), 2)
    } finally {
      await t.cleanup()
    }
  })

  test('an import of colliding chunks over many batches keeps every content', async () => {
    const src = await mkdtemp(join(tmpdir(), 'strata-pipeline-'))
    try {
      const files = new Map<string, Buffer>()
      mkdirSync(join(src, 'd'))
      for (let i = 0; i < 12; i++) {
        // 2 MiB files, some sharing chunks with the one before: 24 MiB, more than one batch
        const data = i % 3 === 2 ? Buffer.concat([files.get(`d/f${i - 1}`)!.subarray(0, CHUNK * 8), patternBytes(CHUNK * 24, 100 + i)]) : patternBytes(CHUNK * 32, 100 + i)
        writeFileSync(join(src, 'd', `f${i}`), data)
        files.set(`d/f${i}`, data)
      }
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 's' })
        const sfs = store.fs('s')
        for (const [rel, data] of files) assert.ok((await sfs.readFile(`/${rel}`)).equals(data), `/${rel} has its content`)
        const distinct = new Set<string>()
        for (const data of files.values()) for (let off = 0; off < data.length; off += CHUNK) distinct.add(data.subarray(off, off + CHUNK).toString('base64'))
        assert.equal(await countChunks(store), distinct.size)
      }, { chunkHasher: firstByteHasher })
    } finally {
      await rm(src, { recursive: true, force: true })
    }
  })

  test('other users of the store lock run between batches, never while one is filled or written', async () => {
    await withStore(async (store) => {
      const pipeline = new BatchPipeline(store.lock)
      const events: string[] = []
      let others = 0
      let stop = false
      const other = (async () => {
        while (!stop) await store.lock.run(async () => { events.push('other'); others++; await new Promise((r) => setImmediate(r)) })
      })()
      for (let i = 0; i < 20; i++) {
        const txn = store.db.txn()
        const commit = txn.commit.bind(txn)
        txn.commit = async (sync?: boolean) => { await commit(sync); events.push(`written ${i}`) }
        await pipeline.submit(txn, async () => {
          events.push(`fill ${i}`)
          txn.put(`T/${i}`, i)
          await new Promise((r) => setImmediate(r))
        })
      }
      await pipeline.drain()
      stop = true
      await other
      for (let i = 0; i < 20; i++) {
        const [from, to] = [events.indexOf(`fill ${i}`), events.indexOf(`written ${i}`)]
        assert.ok(from >= 0 && to > from, `batch ${i} was filled, then written`)
        assert.ok(!events.slice(from, to).includes('other'), `nothing else held the lock during batch ${i}`)
      }
      assert.ok(others > 1, 'the other user got its turns')
    })
  })
})
