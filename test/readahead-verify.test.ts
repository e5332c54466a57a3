import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Store } from '../engine/index.js'
import { packFileName } from '../engine/store/packs.js'
import { CHUNK, MiB, chunkId, pointers } from './packs-helpers.js'
import { rejectsWith, withTempDir } from './helpers.js'

/**
 * A stream's chunks past its first 2 MiB are read ahead on the pool (ChunkStore.prefetch) and
 * verified there: a damaged chunk deep inside a stream fails with EIO naming it, and the chunks
 * before it read back right.
 */

test('a damaged chunk read ahead by a stream fails with EIO naming it; the chunks before it read back right', { timeout: 120_000 }, async () => {
  await withTempDir('strata-spanhash-', async (root) => {
    const src = join(root, 'src')
    const path = join(root, 'store')
    await mkdir(src)
    const big = randomBytes(8 * MiB)
    await writeFile(join(src, 'big'), big)
    // past the first 2 MiB (read in place before read-ahead starts): this chunk is read ahead
    const damaged = 100
    let store = await Store.open({ path })
    let id: string
    try {
      await store.snapshotDir(src, { name: 's' })
      id = chunkId(store, big.subarray(damaged * CHUNK, (damaged + 1) * CHUNK))
      const at = (await pointers(store)).get(id)
      assert.ok(at, 'the chunk is packed')
      const pack = join(path, 'packs', packFileName(at.pack))
      const bytes = readFileSync(pack)
      bytes[at.offset + 4321] ^= 0xff
      writeFileSync(pack, bytes)
    } finally {
      await store.close()
    }
    store = await Store.open({ path })
    try {
      const h = await store.fs('s').open('/big', 'r')
      try {
        const buf = Buffer.alloc(MiB)
        let off = 0
        for (; off + MiB <= damaged * CHUNK; off += MiB) {
          const { bytesRead } = await h.read(buf, 0, MiB, off)
          assert.equal(bytesRead, MiB)
          assert.ok(buf.equals(big.subarray(off, off + MiB)), `bytes at ${off}`)
        }
        const err = await rejectsWith(h.read(buf, 0, MiB, off), 'EIO', '/big')
        assert.ok(err.message.includes(id!), `names chunk ${id!}: ${err.message}`)
        assert.ok(err.message.includes("'s'"), `names the snapshot: ${err.message}`)
      } finally {
        await h.close()
      }
    } finally {
      await store.close()
    }
  })
})
