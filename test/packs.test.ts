import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFileSync, existsSync, openSync, closeSync, readSync, writeSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Level } from 'level'
import { Store } from '../engine/index.js'
import { FORMAT_KEY } from '../engine/store/keys.js'
import { decode, encode } from '../engine/store/codec.js'
import { FORMAT_VERSION } from '../engine/store/db.js'
import { packFileName } from '../engine/store/packs.js'
import { patternBytes, rejectsWith, tempStore, withTempDir } from './helpers.js'
import { CHUNK, MiB, assertFsckOk, chunkIdsOf, committed, inlineIds, packBytes, packIds, pointers, readInSteps, withReopenableStore } from './packs-helpers.js'

/**
 * Chunk bodies of large batches live in pack files (engine/store/packs.ts), those of small
 * batches under `C/` in LevelDB; reads, dedup, fsck and the format record must see both.
 */

describe('where chunk bodies are kept', () => {
  test('a large batch goes to a pack and a small one to LevelDB; both read back exactly after reopen', () => withReopenableStore(async (s) => {
    const big = patternBytes(6 * MiB + 123, 1)
    big.fill(0, 2 * MiB, 2 * MiB + 2 * CHUNK) // a hole: stores nothing
    const small = patternBytes(5 * CHUNK + 17, 2)
    await committed(s.store, 'big', undefined, { '/big': big })
    const bigIds = chunkIdsOf(s.store, big)
    let at = await pointers(s.store)
    assert.deepEqual([...at.keys()].sort(), [...bigIds].sort(), 'every chunk of the big file has a pointer, and only those')
    assert.equal((await inlineIds(s.store)).size, 0, 'no chunk of the big file is kept in LevelDB')
    const packs = s.store.db.packs.list()
    assert.equal(packs.length, 1)
    assert.equal(packs[0].size, big.length - 2 * CHUNK)
    // written in one go, the file lies in file order in its pack: one sweep reads it
    bigIds.forEach((id, i) => {
      const p = at.get(id)!
      assert.equal(p.pack, packs[0].id)
      assert.equal(p.offset, i * CHUNK, `chunk ${i} of the file`)
    })

    await committed(s.store, 'small', 'big', { '/small': small })
    assert.deepEqual([...(await inlineIds(s.store))].sort(), chunkIdsOf(s.store, small).sort(), 'the small file is kept in LevelDB')
    at = await pointers(s.store)
    assert.equal(at.size, bigIds.length, 'and has no pointer')
    assert.equal(packBytes(s.store), packs[0].size, 'and added nothing to the pack')

    let store = await s.reopen()
    // a cold sequential read through one handle: the read-ahead reads adjacent chunks together
    const spans: number[] = []
    let prefetched = 0
    const packFiles = store.db.packs
    const readSpan = packFiles.readSpan.bind(packFiles)
    packFiles.readSpan = (pack, offset, length) => { spans.push(length); return readSpan(pack, offset, length) }
    const prefetch = store.chunks.prefetch.bind(store.chunks)
    store.chunks.prefetch = (refs, path) => { prefetched += refs.length; return prefetch(refs, path) }
    assert.ok((await readInSteps(store.fs('small'), '/big', big.length)).equals(big), 'stepped read of the big file')
    assert.ok(prefetched > 0, 'the sequential read went through read-ahead')
    assert.ok(Math.max(...spans) >= 8 * CHUNK, `read-ahead read adjacent packed chunks together (largest read ${Math.max(...spans)} bytes)`)
    assert.ok(Math.max(...spans) <= MiB + CHUNK, `one read-ahead read stays near 1 MiB (largest ${Math.max(...spans)} bytes)`)
    assert.ok((await readInSteps(store.fs('small'), '/small', small.length)).equals(small))

    store = await s.reopen()
    assert.ok((await store.fs('small').readFile('/big')).equals(big), 'whole-file read of the big file')
    assert.ok((await store.fs('small').readFile('/small')).equals(small), 'whole-file read of the small file')
    assert.ok((await store.fs('big').readFile('/big')).equals(big))
    await assertFsckOk(store)
  }))

  test('storing content that is already packed adds no pack bytes and no pointers', () => withTempDir('strata-packs-', async (host) => withReopenableStore(async (s) => {
    const data = patternBytes(5 * MiB + 7, 3)
    writeFileSync(join(host, 'big'), data)
    await s.store.snapshotDir(host, { name: 'import1' })
    await committed(s.store, 'written', undefined, { '/big': data })
    const bytes = packBytes(s.store)
    assert.equal(bytes, data.length, 'the second copy was deduplicated in the same process')
    const before = [...(await pointers(s.store)).entries()]
    const inlineBefore = await inlineIds(s.store)

    // a fresh process: nothing cached, dedup compares against the bodies in the pack
    const store = await s.reopen()
    await store.snapshotDir(host, { name: 'import2' })
    await committed(store, 'again', 'import1', { '/copy': Buffer.from(data), '/big2': Buffer.from(data) })
    assert.equal(packBytes(store), bytes, 'no pack bytes added')
    assert.deepEqual([...(await pointers(store)).entries()], before, 'no pointer added or moved')
    assert.deepEqual(await inlineIds(store), inlineBefore, 'nothing added to LevelDB either')
    for (const [snap, path] of [['import2', '/big'], ['again', '/copy'], ['again', '/big2'], ['again', '/big']]) {
      assert.ok((await store.fs(snap).readFile(path)).equals(data), `${snap}:${path}`)
    }
    await assertFsckOk(store)
  })))
})

/** A closed store with 'base' holding a 4 MiB file in pack 0 and a small file in LevelDB. */
async function damagedStore(damage: (packPath: string) => void, check: (store: Store, pack: string) => Promise<void>): Promise<void> {
  const t = await tempStore()
  let store: Store | undefined
  try {
    await committed(t.store, 'base', undefined, { '/big': patternBytes(4 * MiB, 4), '/small': patternBytes(3 * CHUNK, 5) })
    assert.deepEqual(packIds(t.store), [0])
    await t.store.close()
    damage(join(t.path, 'packs', packFileName(0)))
    store = await Store.open({ path: t.path })
    await check(store, packFileName(0))
  } finally {
    await store?.close()
    await t.cleanup()
  }
}

describe('fsck of packed chunks', () => {
  test('a pointer into a pack file that is gone is reported, and reads fail with EIO naming the file', () => damagedStore(unlinkSync, async (store, pack) => {
    const at = await pointers(store)
    assert.equal(at.size, 64)
    const report = await store.fsck()
    assert.equal(report.ok, false)
    for (const id of at.keys()) {
      assert.ok(report.problems.some((p) => p.includes(id) && p.includes(pack)), `chunk ${id} reported:\n${report.problems.join('\n')}`)
    }
    assert.equal(report.problems.length, 65, report.problems.join('\n'))
    const where = report.problems.find((p) => p.startsWith("snapshot 'base': '/big' reads chunks"))
    assert.ok(where && [...at.keys()].every((id) => where.includes(id)), 'and where they are read')
    await rejectsWith(store.fs('base').readFile('/big'), 'EIO', '/big')
    await rejectsWith(readInSteps(store.fs('base'), '/big', 4 * MiB), 'EIO', '/big')
    assert.ok((await store.fs('base').readFile('/small')).equals(patternBytes(3 * CHUNK, 5)), 'the file in LevelDB still reads')
  }))

  test('a pack cut short before a chunk ends is reported, naming the chunk and the pack', () => damagedStore((p) => truncateSync(p, 4 * MiB - CHUNK / 2), async (store, pack) => {
    const at = await pointers(store)
    const [last] = [...at].find(([, p]) => p.offset + p.length > 4 * MiB - CHUNK / 2)!
    for (const verifyData of [false, true]) {
      const report = await store.fsck({ verifyData })
      assert.equal(report.ok, false)
      assert.equal(report.problems.length, 2, report.problems.join('\n'))
      assert.ok(report.problems[0].includes(last) && report.problems[0].includes(pack), report.problems[0])
      assert.equal(report.problems[1], `snapshot 'base': '/big' reads chunk ${last}, which is damaged or missing`)
    }
    await rejectsWith(store.fs('base').readFile('/big'), 'EIO', '/big')
  }))

  test('a flipped byte inside a pack is found by verifyData only', () => {
    const where = 2 * MiB + 1000
    return damagedStore((p) => {
      const fd = openSync(p, 'r+')
      try {
        const b = Buffer.alloc(1)
        readSync(fd, b, 0, 1, where)
        b[0] ^= 0x40
        writeSync(fd, b, 0, 1, where)
      } finally {
        closeSync(fd)
      }
    }, async (store) => {
      const [hit] = [...(await pointers(store))].find(([, p]) => p.offset <= where && where < p.offset + p.length)!
      assert.ok((await store.fsck()).ok, 'the pointers are all inside the pack')
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, false)
      assert.equal(report.problems.length, 2, report.problems.join('\n'))
      assert.ok(report.problems[0].includes(hit) && /does not match its hash/.test(report.problems[0]), report.problems[0])
      assert.equal(report.problems[1], `snapshot 'base': '/big' reads chunk ${hit}, which is damaged or missing`)
    })
  })

  test('garbage after a pack\'s last chunk and a pack no pointer names are not problems; gc deletes the unnamed pack', () => {
    const orphan = packFileName(0x2a)
    let orphanPath = ''
    return damagedStore((p) => {
      appendFileSync(p, patternBytes(100_000, 6))
      orphanPath = join(p, '..', orphan)
      writeFileSync(orphanPath, patternBytes(200_000, 7))
    }, async (store) => {
      await assertFsckOk(store)
      assert.ok((await store.fs('base').readFile('/big')).equals(patternBytes(4 * MiB, 4)))
      const report = await store.gc()
      assert.equal(report.chunksRemoved, 0)
      assert.equal(report.packsRemoved, 1, JSON.stringify(report))
      assert.equal(report.packBytesFreed, 200_000)
      assert.equal(report.bytesRepacked, 0)
      assert.equal(existsSync(orphanPath), false, `${orphan} was deleted`)
      assert.deepEqual(store.db.packs.list(), [{ id: 0, size: 4 * MiB + 100_000 }], 'the mostly live pack is kept as it is')
      assert.ok((await readInSteps(store.fs('base'), '/big', 4 * MiB)).equals(patternBytes(4 * MiB, 4)))
      await assertFsckOk(store)
    })
  })
})

describe('format record', () => {
  async function setFormat(path: string, format: number): Promise<void> {
    const level = new Level<string, Buffer>(join(path, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
    await level.open()
    try {
      await level.put(FORMAT_KEY, encode({ format }))
    } finally {
      await level.close()
    }
  }
  async function getFormat(path: string): Promise<number> {
    const level = new Level<string, Buffer>(join(path, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
    await level.open()
    try {
      return decode<{ format: number }>((await level.get(FORMAT_KEY))!).format
    } finally {
      await level.close()
    }
  }

  test('a version 1 store opens, reads as before and is marked with the current version', async () => {
    const t = await tempStore()
    try {
      // what a version 1 store holds: every chunk under C/
      const data = patternBytes(6 * CHUNK + 9, 8)
      await committed(t.store, 'old', undefined, { '/f': data })
      assert.equal((await pointers(t.store)).size, 0)
      await t.store.close()
      await setFormat(t.path, 1)
      const store = await Store.open({ path: t.path })
      try {
        assert.deepEqual(await store.db.get(FORMAT_KEY), { format: FORMAT_VERSION })
        assert.ok((await store.fs('old').readFile('/f')).equals(data))
        const big = patternBytes(2 * MiB, 9)
        await committed(store, 'new', 'old', { '/big': big })
        assert.ok((await pointers(store)).size > 0, 'new large batches go to packs')
        assert.ok((await store.fs('new').readFile('/big')).equals(big))
        await assertFsckOk(store)
      } finally {
        await store.close()
      }
      assert.equal(await getFormat(t.path), FORMAT_VERSION, 'the mark is on disk')
    } finally {
      await t.cleanup()
    }
  })

  test('a store of an unknown format version is refused with EFORMAT naming it, and left as it was', async () => {
    const t = await tempStore()
    try {
      await t.store.close()
      await setFormat(t.path, 99)
      const err = await rejectsWith(Store.open({ path: t.path }), 'EFORMAT')
      assert.ok(err.message.includes(t.path), err.message)
      assert.ok(err.message.includes('99'), err.message)
      assert.equal(await getFormat(t.path), 99, 'the record is unchanged (and the database was closed again)')
      assert.equal(existsSync(join(t.path, 'HOLDER')), false)
      assert.equal(existsSync(join(t.path, 'packs')), false, 'a refused store is left as it was')
    } finally {
      await t.cleanup()
    }
  })
})

