import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Store, type ChunkHasher } from '../engine/index.js'
import { countChunks, patternBytes, tempStore } from './helpers.js'

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
