import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Store, type ChunkHasher, type StoreOptions } from '../engine/index.js'
import { ReadStream, STREAM_AFTER, READ_AHEAD } from '../engine/store/readstream.js'
import { countChunks, patternBytes, rejectsWith, tempStore } from './helpers.js'

/**
 * Chunks are content-addressed by a 64-bit hash, but a put never trusts the hash alone. A hasher
 * that gives every chunk the same hash forces every chunk into the collision path.
 */

const CHUNK = 64 * 1024
const collidingHasher: ChunkHasher = () => Buffer.alloc(8)

/** Distinct non-zero chunk contents of `files` (all-zero chunks are holes and store nothing). */
function distinctChunks(files: Buffer[]): number {
  const seen = new Set<string>()
  for (const f of files) {
    for (let off = 0; off < f.length; off += CHUNK) {
      const c = f.subarray(off, Math.min(f.length, off + CHUNK))
      if (c.some((b) => b !== 0)) seen.add(c.toString('base64'))
    }
  }
  return seen.size
}

test('every chunk colliding: distinct contents stay distinct, identical ones dedup, across reopen', async () => {
  const t = await tempStore({ chunkHasher: collidingHasher })
  try {
    const a = patternBytes(2 * CHUNK, 1)
    const lastByte = Buffer.from(a)
    lastByte[lastByte.length - 1] ^= 1 // differs from `a` in one byte of its second chunk
    const files: Record<string, Buffer> = {
      '/a': a,
      '/a-copy': Buffer.from(a),
      '/last-byte': lastByte,
      '/b': patternBytes(3 * CHUNK + 17, 2),
      '/repeated': Buffer.concat([a.subarray(0, CHUNK), a.subarray(0, CHUNK), a.subarray(0, CHUNK)]),
      '/prefix': a.subarray(0, CHUNK / 2), // a short chunk that is a prefix of another
      '/sparse': Buffer.concat([Buffer.alloc(CHUNK), patternBytes(CHUNK, 3), Buffer.alloc(CHUNK)]),
    }
    let store = t.store
    await store.prepare('a')
    const fs = store.fs('a')
    for (const [p, data] of Object.entries(files)) await fs.writeFile(p, data)
    const expected = distinctChunks(Object.values(files))
    assert.equal(await countChunks(store), expected)
    for (const [p, data] of Object.entries(files)) assert.ok((await fs.readFile(p)).equals(data), `content of ${p}`)
    await store.commit('base', 'a')

    await store.close()
    store = await Store.open({ path: t.path, chunkHasher: collidingHasher })
    try {
      const base = store.fs('base')
      for (const [p, data] of Object.entries(files)) assert.ok((await base.readFile(p)).equals(data), `content of ${p} after reopen`)
      await store.prepare('b', 'base')
      const more = store.fs('b')
      const fresh = patternBytes(2 * CHUNK, 4)
      await more.writeFile('/again', Buffer.from(files['/b']))
      await more.writeFile('/fresh', fresh)
      assert.equal(await countChunks(store), distinctChunks([...Object.values(files), fresh]))
      assert.ok((await more.readFile('/again')).equals(files['/b']))
      assert.ok((await more.readFile('/fresh')).equals(fresh))
      // a small overwrite in the middle of a colliding chunk
      const h = await more.open('/a', 'r+')
      await h.write(Buffer.from('patch'), 0, 5, CHUNK + 10)
      await h.close()
      const patched = Buffer.from(a)
      Buffer.from('patch').copy(patched, CHUNK + 10)
      assert.ok((await more.readFile('/a')).equals(patched))
      assert.ok((await more.readFile('/a-copy')).equals(a))
      assert.ok((await store.fs('base').readFile('/a')).equals(a))
      const report = await store.fsck({ verifyData: true })
      assert.ok(report.ok, report.problems.join('\n'))
    } finally {
      await store.close()
    }
  } finally {
    await t.cleanup()
  }
})

test('colliding chunks freed by gc are not confused with new ones', async () => {
  const t = await tempStore({ chunkHasher: collidingHasher })
  try {
    const { store } = t
    const kept = patternBytes(CHUNK, 10)
    const dropped = patternBytes(CHUNK, 11)
    await store.prepare('tmp')
    await store.fs('tmp').writeFile('/dropped', dropped) // takes the first collision slot
    await store.commit('tmp-c', 'tmp')
    await store.prepare('keep', 'tmp-c')
    await store.fs('keep').writeFile('/kept', kept) // the second slot
    await store.commit('keep-c', 'keep')
    await store.prepare('other')
    const other = store.fs('other')
    const third = patternBytes(CHUNK, 12)
    await other.writeFile('/third', third)
    await store.remove('other')
    assert.equal((await store.gc()).chunksRemoved, 1)
    await store.prepare('new', 'keep-c')
    const fs = store.fs('new')
    const fresh = patternBytes(CHUNK, 13)
    await fs.writeFile('/fresh', fresh)
    await fs.writeFile('/kept-again', kept)
    assert.ok((await fs.readFile('/fresh')).equals(fresh))
    assert.ok((await fs.readFile('/kept')).equals(kept))
    assert.ok((await fs.readFile('/kept-again')).equals(kept))
    assert.ok((await fs.readFile('/dropped')).equals(dropped))
    const report = await store.fsck({ verifyData: true })
    assert.ok(report.ok, report.problems.join('\n'))
  } finally {
    await t.cleanup()
  }
})

// ---- reads of stored data: streams, the shared cache, read-ahead of cold data ----

const MiB = 1024 * 1024

/** Reads `size` bytes of `path` in `piece`-sized reads at the given offsets order, into one buffer. */
async function readPieces(fs: ReturnType<Store['fs']>, path: string, size: number, offsets: number[], piece: number): Promise<Buffer> {
  const out = Buffer.alloc(size, 0xaa)
  const h = await fs.open(path, 'r')
  try {
    for (const off of offsets) {
      const want = Math.min(piece, size - off)
      const { bytesRead } = await h.read(out, off, want, off)
      assert.equal(bytesRead, want, `read at ${off}`)
    }
  } finally {
    await h.close()
  }
  return out
}

/**
 * A store holding `snapshots` (name -> path -> content), each committed on its own, then closed
 * and opened again with `opts`: reads start with an empty chunk cache.
 */
async function reopenedStore(snapshots: Record<string, Record<string, Buffer>>, opts: Omit<StoreOptions, 'path'> = {}): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  const t = await tempStore()
  let store: Store | undefined
  try {
    for (const [name, files] of Object.entries(snapshots)) {
      await t.store.prepare(`${name}-w`)
      for (const [path, data] of Object.entries(files)) await t.store.fs(`${name}-w`).writeFile(path, data)
      await t.store.commit(name, `${name}-w`)
    }
    await t.store.close()
    store = await Store.open({ ...opts, path: t.path })
  } catch (err) {
    await t.cleanup()
    throw err
  }
  const opened = store
  return { store: opened, cleanup: async () => { await opened.close(); await t.cleanup() } }
}

const inOrder = (size: number, piece: number): number[] => Array.from({ length: Math.ceil(size / piece) }, (_, i) => i * piece)

test('sequential reads of a large file: exact bytes in any piece size, out of order, after a seek, with holes and a short tail', async () => {
  // 20 MiB + 123 bytes: past the stream threshold, with a hole of 3 chunks and a short last chunk
  const size = 20 * MiB + 123
  const data = patternBytes(size, 21)
  data.fill(0, 5 * MiB, 5 * MiB + 3 * CHUNK)
  const { store, cleanup } = await reopenedStore({ base: { '/big': data } }, { cacheBytes: 4 * MiB })
  try {
    const fs = store.fs('base')
    for (const piece of [MiB, 128 * 1024, 100_000, 3 * MiB + 5]) {
      assert.ok((await readPieces(fs, '/big', size, inOrder(size, piece), piece)).equals(data), `in ${piece}-byte pieces`)
    }
    // requests of one sequential reader arriving a little out of order, as the kernel sends them
    const swapped = inOrder(size, MiB)
    for (let i = 0; i + 1 < swapped.length; i += 2) [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]]
    assert.ok((await readPieces(fs, '/big', size, swapped, MiB)).equals(data), 'out of order')
    // a stream, then a seek back to the start and a second stream on the same handle
    const h = await fs.open('/big', 'r')
    try {
      const buf = Buffer.alloc(MiB)
      for (let off = 0; off < 12 * MiB; off += MiB) await h.read(buf, 0, MiB, off)
      for (let off = 0; off < size; off += MiB) {
        const { bytesRead } = await h.read(buf, 0, MiB, off)
        assert.ok(buf.subarray(0, bytesRead).equals(data.subarray(off, off + bytesRead)), `after the seek, at ${off}`)
      }
    } finally {
      await h.close()
    }
  } finally {
    await cleanup()
  }
})

test('a large sequential read does not fill the shared chunk cache; random reads do, and every snapshot shares them', async () => {
  const size = 24 * MiB
  const data = patternBytes(size, 22)
  // the same content in two snapshots
  const { store, cleanup } = await reopenedStore({ a: { '/big': data }, b: { '/same': Buffer.from(data) } }, { cacheBytes: 64 * MiB })
  try {
    assert.equal(store.chunks.cachedBytes, 0)
    assert.ok((await readPieces(store.fs('a'), '/big', size, inOrder(size, MiB), MiB)).equals(data))
    // the head of a sequence is cached as any read; the rest of the stream is not
    const afterStream = store.chunks.cachedBytes
    assert.ok(afterStream <= STREAM_AFTER + MiB, `a 24 MiB stream left ${afterStream} bytes cached`)
    // reads out of sequence are cached, and the other snapshot's file finds them
    const pieces = inOrder(size, MiB)
    const scattered = pieces.map((_, i) => pieces[(i * 7) % pieces.length]) // 7 MiB apart: never in sequence
    assert.ok((await readPieces(store.fs('a'), '/big', size, scattered, MiB)).equals(data))
    const cached = store.chunks.cachedBytes
    assert.ok(cached >= size - MiB, `random reads cached ${cached} bytes`)
    assert.ok((await readPieces(store.fs('b'), '/same', size, scattered, MiB)).equals(data))
    assert.equal(store.chunks.cachedBytes, cached, 'the same chunks are cached once for both snapshots')
    // and a stream over cached chunks reads them from the cache without adding any
    assert.ok((await readPieces(store.fs('b'), '/same', size, inOrder(size, MiB), MiB)).equals(data))
    assert.equal(store.chunks.cachedBytes, cached)
  } finally {
    await cleanup()
  }
})

test('a read of a chunk missing from the store fails with EIO naming the file', async () => {
  const { store, cleanup } = await reopenedStore({ base: { '/f': patternBytes(4 * CHUNK, 23) } })
  try {
    const keys: string[] = []
    for await (const k of store.db.scanKeys('C/')) keys.push(k)
    assert.equal(keys.length, 4)
    const txn = store.db.txn()
    txn.del(keys[2])
    await txn.commit()
    await rejectsWith(store.fs('base').readFile('/f'), 'EIO', '/f')
    // read-ahead of the missing chunk rejects only its own promise, and only when it is used
    const ahead = store.chunks.prefetch(keys.map((k) => Buffer.from(k.slice(2), 'hex')), { path: '/f' })
    assert.equal((await ahead[0]).length, CHUNK)
    await rejectsWith(ahead[2], 'EIO', '/f')
  } finally {
    await cleanup()
  }
})

test('a stream over a copied-up file sees what another handle writes ahead of it', async () => {
  const size = 16 * MiB
  const data = patternBytes(size, 24)
  const { store, cleanup } = await reopenedStore({ base: { '/big': data } })
  try {
    await store.prepare('rw', 'base')
    const fs = store.fs('rw')
    const reader = await fs.open('/big', 'r')
    const writer = await fs.open('/big', 'r+')
    try {
      const expected = Buffer.from(data)
      const buf = Buffer.alloc(MiB)
      for (let off = 0; off < size; off += MiB) {
        if (off === 10 * MiB) {
          // into chunks the stream has not reached: one in memory (dirty), one stored by a sync
          const patch = patternBytes(3 * CHUNK, 25)
          await writer.write(patch, 0, patch.length, 12 * MiB - CHUNK / 2)
          patch.copy(expected, 12 * MiB - CHUNK / 2)
          await writer.sync()
          await writer.write(Buffer.from('tail'), 0, 4, 15 * MiB + 7)
          Buffer.from('tail').copy(expected, 15 * MiB + 7)
        }
        const { bytesRead } = await reader.read(buf, 0, MiB, off)
        assert.equal(bytesRead, MiB)
        assert.ok(buf.equals(expected.subarray(off, off + MiB)), `at ${off}`)
      }
    } finally {
      await writer.close()
      await reader.close()
    }
    assert.ok((await store.fs('base').readFile('/big')).equals(data), 'the committed snapshot is unchanged')
  } finally {
    await cleanup()
  }
})

test('read-ahead starts on the second MiB of a sequence, refills at half a window, and restarts with a new sequence', () => {
  const s = new ReadStream()
  const chunks = 4096
  const step = MiB / CHUNK
  const read = (i: number): [number, number] | undefined => {
    const plan = s.plan(i * MiB, (i + 1) * MiB)
    return plan.sequential ? s.after((i + 1) * step, chunks) : undefined
  }
  assert.equal(read(0), undefined, 'a first read is not a sequence')
  assert.deepEqual(read(1), [2 * step, 2 * step + READ_AHEAD], 'second MiB: the next window')
  assert.equal(read(2), undefined, 'more than half a window still ahead')
  let i = 3
  for (; (i + 1) * step <= 2 * step + READ_AHEAD / 2; i++) assert.equal(read(i), undefined, `read ${i}`)
  assert.deepEqual(read(i), [2 * step + READ_AHEAD, (i + 1) * step + READ_AHEAD], 'refilled at half a window')
  assert.equal(s.after(chunks, chunks), undefined, 'nothing past the end')
  assert.equal(read(100), undefined, 'a jump starts a new sequence')
  assert.deepEqual(read(101), [102 * step, 102 * step + READ_AHEAD], 'which reads ahead from its own second MiB')
  const small = new ReadStream()
  small.plan(0, 128 * 1024)
  small.plan(128 * 1024, 256 * 1024)
  assert.equal(small.after(4, 4), undefined, 'a small file read in two requests: no read-ahead')
})
