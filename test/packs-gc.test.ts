import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Store } from '../engine/index.js'
import { PackGoneError, packFileName } from '../engine/store/packs.js'
import { patternBytes, withTempDir } from './helpers.js'
import { CHUNK, MiB, assertFsckOk, chunkIdsOf, committed, inlineIds, packBytes, packIds, pointers, withReopenableStore } from './packs-helpers.js'

/** gc of packed chunks: dead pointers, dead packs, mostly dead packs, bytes a crash left behind. */

const packPath = (store: Store, id: number): string => join(store.path, 'packs', packFileName(id))

describe('gc of packs', () => {
  test('removing the only snapshot using a big file deletes its pointers and its pack', () => withReopenableStore(async (s) => {
    const kept = patternBytes(3 * MiB, 1)
    const small = patternBytes(2 * CHUNK, 2)
    const doomed = patternBytes(5 * MiB + 1, 3)
    await committed(s.store, 'kept', undefined, { '/kept': kept, '/small': small })
    // each process writes its own pack: the doomed file gets one of its own
    await committed(await s.reopen(), 'doomed', 'kept', { '/doomed': doomed })
    let store = await s.reopen()
    assert.deepEqual(packIds(store), [0, 1])
    const doomedPack = store.db.packs.list()[1]
    const doomedIds = chunkIdsOf(store, doomed)
    await store.remove('doomed')
    const report = await store.gc()
    assert.equal(report.chunksRemoved, doomedIds.length)
    assert.equal(report.bytesRemoved, doomed.length)
    assert.equal(report.packsRemoved, 1, JSON.stringify(report))
    assert.equal(report.packBytesFreed, doomedPack.size)
    assert.equal(report.bytesRepacked, 0)
    const at = await pointers(store)
    for (const id of doomedIds) assert.equal(at.has(id), false, `pointer of ${id} removed`)
    assert.equal(at.size, chunkIdsOf(store, kept).length)
    assert.equal(existsSync(packPath(store, 1)), false)
    assert.deepEqual(packIds(store), [0])
    assert.ok((await store.fs('kept').readFile('/kept')).equals(kept))
    assert.ok((await store.fs('kept').readFile('/small')).equals(small))
    await assertFsckOk(store)
    store = await s.reopen()
    assert.ok((await store.fs('kept').readFile('/kept')).equals(kept))
    assert.equal((await store.gc()).packsRemoved, 0, 'nothing more to do')
  }))

  test('the pack a long-running process is writing is reclaimed too', () => withReopenableStore(async (s) => {
    const kept = patternBytes(2 * MiB, 11)
    const doomed = patternBytes(8 * MiB, 12)
    await committed(s.store, 'kept', undefined, { '/kept': kept })
    await committed(s.store, 'doomed', 'kept', { '/doomed': doomed })
    assert.deepEqual(packIds(s.store), [0], 'one process, one pack')
    await s.store.remove('doomed')
    const report = await s.store.gc()
    assert.equal(report.packsRemoved, 1, JSON.stringify(report))
    assert.equal(report.bytesRepacked, kept.length)
    assert.equal(packBytes(s.store), kept.length, 'only the live chunks are left on disk')
    assert.ok((await s.store.fs('kept').readFile('/kept')).equals(kept))
    await committed(s.store, 'more', 'kept', { '/more': patternBytes(2 * MiB, 13) })
    await assertFsckOk(s.store)
    const store = await s.reopen()
    assert.ok((await store.fs('more').readFile('/kept')).equals(kept))
    await assertFsckOk(store)
  }))

  for (const liveChunks of [32, 4]) {
    const where = liveChunks * CHUNK >= MiB ? 'a new pack' : 'LevelDB (too few bytes for a pack)'
    test(`a pack mostly dead is rewritten: ${liveChunks} live chunks of 128 move to ${where}`, () => withReopenableStore(async (s) => {
      const big = patternBytes(8 * MiB, 4)
      const part = big.subarray(2 * MiB, 2 * MiB + liveChunks * CHUNK)
      await committed(s.store, 'a', undefined, { '/big': big })
      await committed(s.store, 'b', undefined, { '/part': Buffer.from(part) })
      assert.equal(packBytes(s.store), 8 * MiB, 'the part was deduplicated')
      let store = await s.reopen()
      await store.remove('a')
      const report = await store.gc()
      assert.equal(report.chunksRemoved, 128 - liveChunks)
      assert.equal(report.packsRemoved, 1, JSON.stringify(report))
      assert.equal(report.bytesRepacked, liveChunks * CHUNK)
      assert.equal(report.packBytesFreed, 8 * MiB - liveChunks * CHUNK)
      assert.equal(existsSync(packPath(store, 0)), false, 'the old pack is deleted')
      const ids = chunkIdsOf(store, part)
      const at = await pointers(store)
      if (liveChunks * CHUNK >= MiB) {
        assert.equal(at.size, liveChunks)
        const [pack] = store.db.packs.list()
        assert.deepEqual(store.db.packs.list(), [{ id: pack.id, size: liveChunks * CHUNK }])
        assert.notEqual(pack.id, 0)
        // copied in their old order: the part still reads in one sweep
        ids.forEach((id, i) => assert.deepEqual(at.get(id), { pack: pack.id, offset: i * CHUNK, length: CHUNK }))
      } else {
        assert.equal(at.size, 0, 'no pointer left')
        assert.deepEqual(packIds(store), [])
        assert.deepEqual([...(await inlineIds(store))].sort(), [...ids].sort())
      }
      assert.ok((await store.fs('b').readFile('/part')).equals(part))
      await assertFsckOk(store)
      store = await s.reopen()
      assert.ok((await store.fs('b').readFile('/part')).equals(part))
      await assertFsckOk(store)
    }))
  }

  test('a pack at least half live is left as it is', () => withReopenableStore(async (s) => {
    const big = patternBytes(4 * MiB, 5)
    await committed(s.store, 'a', undefined, { '/big': big })
    await committed(s.store, 'b', undefined, { '/half': Buffer.from(big.subarray(0, 2 * MiB)) })
    const store = await s.reopen()
    const before = await pointers(store)
    await store.remove('a')
    const report = await store.gc()
    assert.equal(report.chunksRemoved, 32)
    assert.deepEqual([report.packsRemoved, report.bytesRepacked, report.packBytesFreed], [0, 0, 0])
    assert.deepEqual(store.db.packs.list(), [{ id: 0, size: 4 * MiB }])
    const after = await pointers(store)
    assert.equal(after.size, 32)
    for (const [id, p] of after) assert.deepEqual(p, before.get(id))
    assert.ok((await store.fs('b').readFile('/half')).equals(big.subarray(0, 2 * MiB)))
  }))
})

/** Appends pack bytes no pointer will name, in another process that is then killed. */
const CRASHING_WRITER = `
import { Store } from ${JSON.stringify(new URL('../engine/index.js', import.meta.url).href)}
import { patternBytes } from ${JSON.stringify(new URL('./helpers.js', import.meta.url).href)}
const store = await Store.open({ path: process.argv[2] })
await store.prepare('child.build', 'base')
await store.fs('child.build').writeFile('/child', patternBytes(2 * 1024 * 1024, 20))
await store.commit('child', 'child.build')
// the bodies of a batch are durable, its LevelDB batch never written
const bodies = Array.from({ length: 48 }, (_, i) => patternBytes(64 * 1024, 100 + i))
await store.db.packs.append(bodies)
process.kill(process.pid, 'SIGKILL')
`

describe('a crash between the pack write and the LevelDB batch', () => {
  test('leaves only pack bytes no pointer names: fsck is ok, data reads, gc reclaims them', () => withTempDir('strata-crash-', async (tmp) => withReopenableStore(async (s) => {
    const big = patternBytes(4 * MiB, 10)
    const small = patternBytes(3 * CHUNK, 11)
    await committed(s.store, 'base', undefined, { '/big': big, '/small': small })
    const lost = await s.store.db.packs.append(Array.from({ length: 128 }, (_, i) => patternBytes(CHUNK, 200 + i)))
    assert.equal(lost[0].pack, 0, 'appended to the pack holding the committed file')
    assert.equal(lost[0].offset, 4 * MiB)
    await s.store.close()

    const script = join(tmp, 'crash.mjs')
    writeFileSync(script, CRASHING_WRITER)
    const child = spawnSync(process.execPath, [script, s.path], { encoding: 'utf8' })
    assert.equal(child.signal, 'SIGKILL', `the writer was killed: status ${child.status}, ${child.stderr}`)

    const store = await s.reopen()
    assert.deepEqual(store.db.packs.list(), [{ id: 0, size: 12 * MiB }, { id: 1, size: 5 * MiB }])
    assert.equal((await pointers(store)).size, 64 + 32, 'pointers only for committed chunks')
    await assertFsckOk(store)
    const child2 = patternBytes(2 * MiB, 20)
    assert.ok((await store.fs('base').readFile('/big')).equals(big))
    assert.ok((await store.fs('base').readFile('/small')).equals(small))
    assert.ok((await store.fs('child').readFile('/child')).equals(child2))

    const report = await store.gc()
    assert.equal(report.chunksRemoved, 0)
    assert.equal(report.packsRemoved, 2, JSON.stringify(report))
    assert.equal(report.bytesRepacked, 6 * MiB)
    assert.equal(report.packBytesFreed, 11 * MiB)
    assert.equal(packBytes(store), 6 * MiB)
    assert.ok(!packIds(store).includes(0) && !packIds(store).includes(1))
    assert.ok((await store.fs('child').readFile('/big')).equals(big))
    assert.ok((await store.fs('child').readFile('/child')).equals(child2))
    await assertFsckOk(store)
  })))
})

describe('a read racing gc', () => {
  test('a chunk whose pack gc removed between lookup and read is looked up again', () => withReopenableStore(async (s) => {
    const big = patternBytes(8 * MiB, 30)
    const part = big.subarray(0, 2 * MiB)
    await committed(s.store, 'a', undefined, { '/big': big })
    await committed(s.store, 'b', undefined, { '/part': Buffer.from(part) })
    const store = await s.reopen()
    await store.remove('a')
    const ids = chunkIdsOf(store, part)
    const refs = ids.map((id) => Buffer.from(id, 'hex'))
    const stale = store.db.getRawSync(`P/${ids[31]}`)!
    const staleAsync = store.db.getRawSync(`P/${ids[30]}`)!

    // read-ahead: gc repacks after the pointers were looked up, before the pack is read
    const db = store.db
    const getManyRaw = db.getManyRaw.bind(db)
    let gcRan = false
    db.getManyRaw = async (keys) => {
      const found = await getManyRaw(keys)
      if (!gcRan && keys.every((k) => k.startsWith('P/'))) {
        gcRan = true
        const report = await store.gc()
        assert.equal(report.packsRemoved, 1, JSON.stringify(report))
      }
      return found
    }
    let lookedUpAgain = 0
    const readStored = store.chunks.readStored.bind(store.chunks)
    store.chunks.readStored = (hex, path) => { lookedUpAgain++; return readStored(hex, path) }
    try {
      const bodies = await Promise.all(store.chunks.prefetch(refs.slice(0, 16), { path: '/part' }))
      assert.ok(gcRan)
      assert.equal(existsSync(packPath(store, 0)), false, 'the pack read ahead from is gone')
      assert.equal(lookedUpAgain, 16, 'each chunk was looked up again')
      bodies.forEach((b, i) => assert.ok(b.equals(part.subarray(i * CHUNK, (i + 1) * CHUNK)), `chunk ${i}`))
    } finally {
      db.getManyRaw = getManyRaw
      store.chunks.readStored = readStored
    }

    // a read on the calling thread with a pointer looked up before the repack
    assert.throws(() => db.packs.readSync({ pack: 0, offset: 31 * CHUNK, length: CHUNK }), PackGoneError)
    await assert.rejects(db.packs.readSpan(0, 0, CHUNK), PackGoneError)
    const getRawSync = db.getRawSync.bind(db)
    let lookups = 0
    db.getRawSync = (key) => {
      if (key !== `P/${ids[31]}`) return getRawSync(key)
      return ++lookups === 1 ? stale : getRawSync(key)
    }
    try {
      assert.ok((await store.chunks.get(refs[31])).equals(part.subarray(31 * CHUNK)))
      assert.equal(lookups, 2)
    } finally {
      db.getRawSync = getRawSync
    }
    // the same on libuv's pool
    let asyncLookups = 0
    db.getManyRaw = async (keys) => {
      if (keys[0] !== `P/${ids[30]}`) return getManyRaw(keys)
      const found = await getManyRaw(keys)
      return ++asyncLookups === 1 ? [staleAsync, ...found.slice(1)] : found
    }
    try {
      assert.ok((await store.chunks.readStored(ids[30]))!.equals(part.subarray(30 * CHUNK, 31 * CHUNK)))
      assert.equal(asyncLookups, 2)
    } finally {
      db.getManyRaw = getManyRaw
    }
    assert.ok((await store.fs('b').readFile('/part')).equals(part))
    await assertFsckOk(store)
  }))
})
