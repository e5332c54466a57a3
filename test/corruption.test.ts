import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { Store } from '../engine/index.js'
import { decode, encode } from '../engine/store/codec.js'
import { FORMAT_KEY } from '../engine/store/keys.js'
import { FORMAT_VERSION } from '../engine/store/db.js'
import type { InodeRecord } from '../engine/store/records.js'
import { packFileName } from '../engine/store/packs.js'
import { CHUNK, MiB, chunkId, committed, inlineIds, pointers, readInSteps } from './packs-helpers.js'
import { rejectsWith } from './helpers.js'

/**
 * Damaged bytes on disk are never served as good data: a flipped byte in a pack, in a chunk
 * LevelDB holds, or in a small file's inline content makes every reader (the engine's fs,
 * checkout, `strata cat`, a FUSE mount) fail with EIO naming the snapshot, path and chunk, and
 * `fsck --verify-data` names the snapshots and paths that read the damage.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

/** 4 MiB of random bytes (packed on import), its chunk 5 to damage; a 1,745-byte file (inline); 3 chunks written in a small batch (kept in LevelDB). */
interface Fixture {
  path: string
  big: Buffer
  small: Buffer
  mid: Buffer
  cleanup: () => Promise<void>
}

const DAMAGED_CHUNK = 5

/** A store with 'base' (imported: /big, /small) and 'child' (adds /mid), closed and reopened so that LevelDB's tables hold everything. */
async function fixture(): Promise<Fixture> {
  const root = await mkdtemp(join(tmpdir(), 'strata-corrupt-'))
  const src = join(root, 'src')
  const path = join(root, 'store')
  await mkdir(src)
  // random: incompressible, so LevelDB keeps the bytes verbatim in its tables
  const big = randomBytes(4 * MiB)
  const small = randomBytes(1745)
  const mid = randomBytes(3 * CHUNK)
  await writeFile(join(src, 'big'), big)
  await writeFile(join(src, 'small'), small)
  const store = await Store.open({ path })
  await store.snapshotDir(src, { name: 'base' })
  await committed(store, 'child', 'base', { '/mid': mid })
  await store.close()
  // LevelDB writes what its log holds into a table when it opens again
  await (await Store.open({ path })).close()
  return { path, big, small, mid, cleanup: () => rm(root, { recursive: true, force: true }) }
}

async function withStoreAt<T>(path: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await Store.open({ path })
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

/** Inverts `count` bytes of `file` at `offset`. */
function flip(file: string, offset: number, count: number): void {
  const data = readFileSync(file)
  for (let i = offset; i < offset + count; i++) data[i] ^= 0xff
  writeFileSync(file, data)
}

/** The LevelDB table that holds `bytes` verbatim, and where. */
function findInTables(path: string, bytes: Buffer): { file: string; at: number } {
  const dir = join(path, 'db')
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.ldb')) continue
    const at = readFileSync(join(dir, name)).indexOf(bytes)
    if (at >= 0) return { file: join(dir, name), at }
  }
  throw new Error('the bytes are in no .ldb table (still in the log?)')
}

/** Damages chunk DAMAGED_CHUNK of /big in its pack (16 bytes); returns its id. */
async function damagePackedChunk(f: Fixture): Promise<string> {
  const id = await withStoreAt(f.path, async (store) => chunkId(store, f.big.subarray(DAMAGED_CHUNK * CHUNK, (DAMAGED_CHUNK + 1) * CHUNK)))
  const at = await withStoreAt(f.path, async (store) => (await pointers(store)).get(id))
  assert.ok(at, 'the chunk is packed')
  flip(join(f.path, 'packs', packFileName(at.pack)), at.offset + 1000, 16)
  return id
}

function cli(path: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, '--store', path, ...args], { encoding: 'buffer', maxBuffer: 64 << 20, timeout: 60_000, env: { ...process.env, STRATA_DEBUG: '' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr: stderr.toString() })
    })
  })
}

/** The message names the snapshot, the path and (when given) the chunk. */
function assertNames(message: string, snapshot: string, path: string, chunk?: string): void {
  assert.ok(message.includes(`'${snapshot}'`), `names snapshot ${snapshot}: ${message}`)
  assert.ok(message.includes(path), `names ${path}: ${message}`)
  if (chunk !== undefined) assert.ok(message.includes(chunk), `names chunk ${chunk}: ${message}`)
}

test('a damaged packed chunk: reads, checkout and cat fail with EIO naming snapshot, path and chunk; fsck --verify-data names both snapshots', { timeout: 120_000 }, async () => {
  const f = await fixture()
  try {
    const id = await damagePackedChunk(f)
    await withStoreAt(f.path, async (store) => {
      const err = await rejectsWith(store.fs('base').readFile('/big'), 'EIO', '/big')
      assertNames(err.message, 'base', '/big', id)
      // a sequential reader goes through read-ahead on the pool: checked there too
      const streamed = await rejectsWith(readInSteps(store.fs('child'), '/big', f.big.length), 'EIO', '/big')
      assertNames(streamed.message, 'child', '/big', id)
      // and once more: nothing damaged was cached by the failed reads
      await rejectsWith(store.fs('base').readFile('/big'), 'EIO', '/big')
      // what is intact still reads
      const h = await store.fs('base').open('/big', 'r')
      try {
        const buf = Buffer.alloc(CHUNK)
        await h.read(buf, 0, CHUNK, 0)
        assert.ok(buf.equals(f.big.subarray(0, CHUNK)))
      } finally {
        await h.close()
      }
      assert.ok((await store.fs('base').readFile('/small')).equals(f.small))

      const out = join(f.path, '..', 'out')
      const co = await rejectsWith(store.checkout('base', out), 'EIO', '/big')
      assertNames(co.message, 'base', '/big', id)
      assert.equal(existsSync(join(out, 'big')), false, 'no file cut short is left behind')

      assert.equal((await store.fsck()).ok, true, 'without --verify-data the bytes are not read')
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, false)
      assert.ok(report.problems.some((p) => p.includes(id) && p.includes('does not match its hash')), report.problems.join('\n'))
      for (const snap of ['base', 'child']) {
        assert.ok(report.problems.some((p) => p.includes(`snapshot '${snap}'`) && p.includes("'/big'") && p.includes(id)), `fsck names ${snap}:/big\n${report.problems.join('\n')}`)
      }
      assert.ok(!report.problems.some((p) => p.includes('/small') || p.includes('/mid')), 'intact files are not named')
    })

    const cat = await cli(f.path, ['cat', 'base', '/big'])
    assert.notEqual(cat.code, 0)
    assertNames(cat.stderr, 'base', '/big', id)
    assert.match(cat.stderr, /EIO/)
    assert.ok(cat.stdout.length <= DAMAGED_CHUNK * CHUNK && cat.stdout.equals(f.big.subarray(0, cat.stdout.length)), 'only intact bytes were written')

    const fsck = await cli(f.path, ['fsck', '--verify-data'])
    assert.equal(fsck.code, 1)
    assert.match(fsck.stdout.toString(), /snapshot 'child': '\/big' reads chunk/)
  } finally {
    await f.cleanup()
  }
})

test('fsck --verify-data names the damage read by an active snapshot (moved files included) and by a view, each at its own path', { timeout: 120_000 }, async () => {
  const f = await fixture()
  try {
    await withStoreAt(f.path, async (store) => {
      await store.prepare('work', 'child')
      const fs = store.fs('work')
      await fs.mkdir('/d')
      await fs.rename('/big', '/d/moved')
      await store.view('look', 'base')
    })
    const id = await damagePackedChunk(f)
    await withStoreAt(f.path, async (store) => {
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, false)
      const line = (snap: string, path: string): string => `snapshot '${snap}': '${path}' reads chunk ${id}, which is damaged or missing`
      for (const expected of [line('base', '/big'), line('child', '/big'), line('work', '/d/moved'), line('look', '/big')]) {
        assert.ok(report.problems.includes(expected), `${expected}\n${report.problems.join('\n')}`)
      }
      assert.ok(!report.problems.some((p) => p.startsWith("snapshot 'work': '/big'")), 'a moved file is named where it now is')
      assert.ok(!report.problems.some((p) => p.includes('/small') || p.includes('/mid')), 'intact files are not named')
    })
  } finally {
    await f.cleanup()
  }
})

test('a damaged chunk kept in LevelDB (C/): reads fail with EIO naming it; fsck --verify-data names the path', { timeout: 120_000 }, async () => {
  const f = await fixture()
  try {
    const id = await withStoreAt(f.path, async (store) => chunkId(store, f.mid.subarray(CHUNK, 2 * CHUNK)))
    assert.ok(await withStoreAt(f.path, async (store) => (await inlineIds(store)).has(id)), 'the chunk is under C/')
    const { file, at } = findInTables(f.path, f.mid.subarray(CHUNK + 4096, CHUNK + 4096 + 64))
    flip(file, at + 10, 1)
    await withStoreAt(f.path, async (store) => {
      const err = await rejectsWith(store.fs('child').readFile('/mid'), 'EIO', '/mid')
      assertNames(err.message, 'child', '/mid', id)
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, false)
      assert.ok(report.problems.some((p) => p.includes("snapshot 'child': '/mid'") && p.includes(id)), report.problems.join('\n'))
    })
  } finally {
    await f.cleanup()
  }
})

test('a flipped byte in the LevelDB table holding a small file: EIO, never the wrong content; checkout leaves no wrong file; fsck --verify-data names it', { timeout: 120_000 }, async () => {
  const f = await fixture()
  try {
    const { file, at } = findInTables(f.path, f.small.subarray(800, 864))
    flip(file, at + 20, 1)
    await withStoreAt(f.path, async (store) => {
      for (const snap of ['base', 'child']) {
        const err = await rejectsWith(store.fs(snap).readFile('/small'), 'EIO', '/small')
        assertNames(err.message, snap, '/small')
      }
      const out = join(f.path, '..', 'out')
      const co = await rejectsWith(store.checkout('child', out), 'EIO', '/small')
      assertNames(co.message, 'child', '/small')
      if (existsSync(join(out, 'small'))) assert.ok((await readFile(join(out, 'small'))).equals(f.small), 'no wrong content is written')
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, false)
      assert.ok(report.problems.some((p) => p.includes('inline content does not match its checksum')), report.problems.join('\n'))
      for (const snap of ['base', 'child']) {
        assert.ok(report.problems.some((p) => p.includes(`snapshot '${snap}': '/small'`)), `fsck names ${snap}:/small\n${report.problems.join('\n')}`)
      }
    })
    const cat = await cli(f.path, ['cat', 'base', '/small'])
    assert.notEqual(cat.code, 0)
    assert.equal(cat.stdout.length, 0, 'nothing of the damaged content is written')
    assertNames(cat.stderr, 'base', '/small')
  } finally {
    await f.cleanup()
  }
})

test('inline contents written before format 3 have no checksum: they read as before and fsck --verify-data counts them', { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-corrupt-'))
  try {
    const path = join(root, 'store')
    const small = randomBytes(100)
    await withStoreAt(path, async (store) => { await committed(store, 'old', undefined, { '/a': small, '/b': small }) })
    // what a version 2 store holds: inline records without a checksum
    const level = new Level<string, Buffer>(join(path, 'db'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
    let stripped = 0
    try {
      for await (const [k, v] of level.iterator({ gte: 'I/', lt: 'I0' })) {
        const rec = decode<InodeRecord>(v)
        if (!rec.inlineHash) continue
        delete rec.inlineHash
        await level.put(k, encode(rec))
        stripped++
      }
      await level.put(FORMAT_KEY, encode({ format: 2 }))
    } finally {
      await level.close()
    }
    assert.equal(stripped, 2)
    await withStoreAt(path, async (store) => {
      assert.deepEqual(await store.db.get(FORMAT_KEY), { format: FORMAT_VERSION })
      assert.ok((await store.fs('old').readFile('/a')).equals(small))
      const report = await store.fsck({ verifyData: true })
      assert.equal(report.ok, true, report.problems.join('\n'))
      assert.equal(report.checked.unverifiable, 2)
      // a rewrite adds the checksum
      await committed(store, 'new', 'old', { '/a': small })
      assert.equal((await store.fsck({ verifyData: true })).checked.unverifiable, 2, "'old' keeps its records; 'new' has a checksummed /a")
    })
  } finally {
    await rm(root, { recursive: true, force: true })
  }
})

function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'FUSE mounts need root'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  return undefined
}

test('through a FUSE mount a damaged chunk reads as EIO, and the daemon log names snapshot, path and chunk', { timeout: 180_000 }, async (t) => {
  const reason = cannotMount()
  if (reason) return t.skip(reason)
  const f = await fixture()
  const runtime = join(f.path, '..', 'run')
  const mnt = join(f.path, '..', 'mnt')
  const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
  const strata = (args: string[]): string => execFileSync(process.execPath, [BIN, '--store', f.path, ...args], { env, encoding: 'utf8', timeout: 60_000 })
  let mounted = false
  try {
    const id = await damagePackedChunk(f)
    await mkdir(mnt)
    strata(['mount', 'child', mnt])
    mounted = true
    await assert.rejects(readFile(join(mnt, 'big')), (err: NodeJS.ErrnoException) => err.code === 'EIO')
    assert.ok((await readFile(join(mnt, 'small'))).equals(f.small))
    assert.ok((await readFile(join(mnt, 'mid'))).equals(f.mid))
    const logs = (await readdir(runtime, { recursive: true })).filter((n) => n.endsWith('.log'))
    const text = (await Promise.all(logs.map((n) => readFile(join(runtime, n), 'utf8')))).join('\n')
    const line = text.split('\n').find((l) => l.includes(id))
    assert.ok(line, `the daemon log names chunk ${id}:\n${text}`)
    assertNames(line, 'child', '/big', id)
  } finally {
    if (mounted) {
      try { strata(['umount', mnt]) } catch { execFileSync('umount', ['-l', mnt]) }
    }
    await f.cleanup()
  }
})
