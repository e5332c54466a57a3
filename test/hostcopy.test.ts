import { test } from 'node:test'
import assert from 'node:assert/strict'
import { open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { OVERLAP_BYTES, copyHostFileDurably, flushWhile } from '../engine/host/copy.js'
import { withTempDir } from './helpers.js'

/** The copy-up of a host file into a directory upper: its bytes and size, and its errors. */

async function copied(dir: string, data: Buffer, size: number): Promise<Buffer> {
  const src = join(dir, 'src')
  const dst = join(dir, 'dst')
  await writeFile(src, data)
  const fh = await open(dst, 'wx', 0o600)
  try {
    await copyHostFileDurably(src, dst, fh, size)
  } finally {
    await fh.close()
  }
  return readFile(dst)
}

test('copy: the bytes of the host file, cut or extended to the record size', async () => {
  await withTempDir('strata-hostcopy-', async (dir) => {
    const data = randomBytes(100_000)
    assert.deepEqual(await copied(dir, data, data.length), data)
  })
  await withTempDir('strata-hostcopy-', async (dir) => {
    const data = randomBytes(100_000)
    assert.deepEqual(await copied(dir, data, 4096), data.subarray(0, 4096))
  })
  await withTempDir('strata-hostcopy-', async (dir) => {
    const data = randomBytes(1000)
    assert.deepEqual(await copied(dir, data, 3000), Buffer.concat([data, Buffer.alloc(2000)]))
  })
})

test('copy: a file big enough to be written out during the copy arrives whole', async () => {
  await withTempDir('strata-hostcopy-', async (dir) => {
    // a repeated random block: the content is checked, not only the size
    const data = Buffer.concat(Array.from({ length: OVERLAP_BYTES / (1 << 20) + 1 }, (_, i) => Buffer.alloc(1 << 20, i)))
    const got = await copied(dir, data, data.length)
    assert.equal(got.length, data.length)
    assert.ok(got.equals(data))
  })
})

test('flushWhile: the work\'s error is thrown, after the flushing has stopped', async () => {
  await withTempDir('strata-hostcopy-', async (dir) => {
    const fh = await open(join(dir, 'f'), 'w')
    try {
      const work = new Promise((_, reject) => setTimeout(() => reject(new Error('copy failed')), 30))
      await assert.rejects(flushWhile(fh, work), /copy failed/)
    } finally {
      await fh.close()
    }
  })
})

test('flushWhile: a flush that fails (a closed handle) is an error too', async () => {
  await withTempDir('strata-hostcopy-', async (dir) => {
    const fh = await open(join(dir, 'f'), 'w')
    await fh.close()
    await assert.rejects(flushWhile(fh, new Promise((resolve) => setTimeout(resolve, 30))), { code: 'EBADF' })
  })
})
