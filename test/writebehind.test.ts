import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { WRITE_BEHIND_BYTES, type Db } from '../engine/store/db.js'
import { decode, encode } from '../engine/store/codec.js'
import { compareKeys } from '../engine/store/unlanded.js'
import { StoreLayer } from '../engine/store/layer.js'
import { inodeKey } from '../engine/store/keys.js'
import type { InodeRecord } from '../engine/store/records.js'
import { rejectsWith, withStore } from './helpers.js'

/**
 * Write-behind: an overlay operation is answered once its batch is queued, reads see queued
 * batches, durable writes wait for everything before them, and a batch that fails after it was
 * acknowledged is written once writes resume, or reported by close.
 */

interface ChainedBatch { write(opts: unknown): Promise<void>; close(): Promise<void> }
interface Level { batch(): ChainedBatch; getSync(key: string): Buffer | undefined }

/** Holds every LevelDB batch write of `db` until `release`; `failNext` makes the next one fail with ENOSPC. */
function gate(db: Db): { release: () => void; failNext: () => void; stored: (key: string) => Buffer | undefined } {
  const level = (db as unknown as { level: Level }).level
  const real = level.batch.bind(level)
  let release!: () => void
  const opened = new Promise<void>((r) => (release = r))
  let fail = false
  level.batch = () => {
    const b = real()
    const write = b.write.bind(b)
    b.write = async (opts) => {
      await opened
      if (!fail) return write(opts)
      fail = false
      await b.close()
      throw new Error('IO error: /x/db/000005.log: No space left on device')
    }
    return b
  }
  return { release, failNext: () => { fail = true }, stored: (key) => level.getSync(key) ?? undefined }
}

/** Makes `resume` fail as it does while the disk is still full; returns the undo. */
function stayFull(db: Db): () => void {
  const d = db as unknown as { reopen: () => Promise<void> }
  const real = d.reopen
  d.reopen = async () => { throw Object.assign(new Error(`no space left on device for store ${db.dir}: still full`), { code: 'ENOSPC' }) }
  return () => { d.reopen = real }
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false
  p.then(() => { done = true }, () => { done = true })
  await sleep(50)
  return done
}

async function put(db: Db, entries: Record<string, string | null>, opts: { behind?: boolean; sync?: boolean } = {}): Promise<void> {
  const txn = db.txn({ writeBehind: opts.behind ?? true })
  for (const [k, v] of Object.entries(entries)) v === null ? txn.del(k) : txn.put(k, v)
  await txn.commit(opts.sync ?? false)
}

async function scanned(db: Db, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const [k, v] of db.scan(prefix)) out.push(`${k}=${db.getSync<string>(k)}:${v.length}`)
  return out
}

describe('write-behind', () => {
  test('a write-behind commit returns before its batch lands, and every read sees it', async () => {
    await withStore(async (store) => {
      const db = store.db
      await put(db, { 'T/a': 'a0', 'T/c': 'c0', 'T/e': 'e0' }, { behind: false })
      const g = gate(db)
      // a write-behind is answered while LevelDB holds the batch back
      await put(db, { 'T/b': 'b1', 'T/c': null, 'T/e': 'e1', 'T/\uffff': 'bmp', 'T/\u{1F600}': 'astral' })
      assert.equal(g.stored('T/e')?.equals(encode('e0')), true, 'nothing has landed yet')
      assert.equal(db.getSync('T/b'), 'b1')
      assert.equal(db.getSync('T/c'), undefined)
      assert.equal(await db.get('T/e'), 'e1')
      assert.equal(await db.getRaw('T/c'), undefined)
      assert.deepEqual((await db.getManyRaw(['T/a', 'T/b', 'T/c', 'T/zz'])).map((v) => v && decode<string>(v)), ['a0', 'b1', undefined, undefined])
      const before = await scanned(db, 'T/')
      const keys: string[] = []
      for await (const k of db.scanKeys('T/')) keys.push(k)
      assert.deepEqual(keys, ['T/a', 'T/b', 'T/e', 'T/\uffff', 'T/\u{1F600}'], 'merged in LevelDB key order, the delete hiding c')
      assert.equal(await db.hasPrefix('T/'), true)
      await put(db, { 'U/x': 'x' })
      assert.equal(await db.hasPrefix('U/'), true)
      await put(db, { 'U/x': null })
      assert.equal(await db.hasPrefix('U/'), false)
      g.release()
      await db.syncLog()
      assert.deepEqual(await scanned(db, 'T/'), before, 'the same after landing')
      assert.equal(g.stored('T/b')?.equals(encode('b1')), true)
      assert.equal(g.stored('T/c'), undefined)
    })
  })

  test('batches queued together are written as one, each key with its last write only', async () => {
    await withStore(async (store) => {
      const db = store.db
      const level = (db as unknown as { level: { batch(): { put(k: string, v: Buffer): unknown; del(k: string): unknown } } }).level
      const g = gate(db)
      const written: string[][] = []
      const gated = level.batch.bind(level)
      level.batch = () => {
        const b = gated()
        const ops: string[] = []
        written.push(ops)
        const [put, del] = [b.put.bind(b), b.del.bind(b)]
        b.put = (k, v) => { if (k.startsWith('T/')) ops.push(`${k}=${decode<string>(v)}`); return put(k, v) }
        b.del = (k) => { if (k.startsWith('T/')) ops.push(`${k} deleted`); return del(k) }
        return b
      }
      await put(db, { 'T/held': 'h' })
      // these queue up behind it (in its batch, gathered for a moment, or in the next)
      await put(db, { 'T/a': 'a1', 'T/b': 'b1' })
      await put(db, { 'T/a': 'a2', 'T/c': 'c1' })
      await put(db, { 'T/b': null, 'T/c': 'c2' })
      await put(db, { 'T/a': 'a3', 'T/b': 'b3' })
      g.release()
      await db.syncLog()
      assert.deepEqual(written.flat(), ['T/held=h', 'T/a=a3', 'T/b=b3', 'T/c=c2'], 'no superseded write reached LevelDB')
      assert.equal(g.stored('T/a')?.equals(encode('a3')), true)
      assert.equal(g.stored('T/b')?.equals(encode('b3')), true)
      assert.equal(g.stored('T/c')?.equals(encode('c2')), true)
    })
  })

  test('keys compare as LevelDB orders them (UTF-8 bytes)', () => {
    const keys = ['a', '\uffff', '\u{1F600}', '\ue000', 'ab', '\u00e9', '\ud7ff']
    const bytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    assert.deepEqual([...keys].sort(compareKeys), bytes)
  })

  test('past WRITE_BEHIND_BYTES not yet landed, a write-behind waits for its batch', async () => {
    await withStore(async (store) => {
      const db = store.db
      const g = gate(db)
      const big = Buffer.alloc(WRITE_BEHIND_BYTES / 3, 1)
      for (let i = 0; i < 3; i++) await put(db, { [`T/${i}`]: big.toString('hex').slice(0, big.length) })
      const held = put(db, { 'T/last': 'x' })
      assert.equal(await settled(held), false, 'the queue is full: this one waits')
      assert.equal(db.getSync('T/last'), 'x', 'and is seen all the same')
      g.release()
      await held
      assert.ok(g.stored('T/last'))
    })
  })

  test('a durable commit waits for the write-behinds before it', async () => {
    await withStore(async (store) => {
      const db = store.db
      const g = gate(db)
      await put(db, { 'T/a': 'a' })
      const durable = put(db, { 'T/b': 'b' }, { sync: true })
      const synced = db.syncLog()
      assert.equal(await settled(durable), false, 'a durable commit waits')
      assert.equal(await settled(synced), false, 'so does syncLog')
      g.release()
      await durable
      assert.ok(g.stored('T/a'), 'the write-behind landed before the durable commit returned')
      await synced
    })
  })

  test('overlay operations are write-behinds; fs.sync waits for them', async () => {
    await withStore(async (store) => {
      await store.prepare('w')
      const fs = store.fs('w')
      await fs.writeFile('/f', 'x')
      await fs.sync()
      const g = gate(store.db)
      await fs.chmod('/f', 0o600)
      await fs.mkdir('/d')
      await fs.writeFile('/d/g', 'data')
      assert.equal((await fs.stat('/f')).mode & 0o7777, 0o600)
      assert.deepEqual((await fs.readdir('/')).sort(), ['d', 'f'])
      assert.equal(await fs.readFile('/d/g', 'utf8'), 'data')
      const sync = fs.sync()
      assert.equal(await settled(sync), false)
      g.release()
      await sync
    })
  })

  test('an acknowledged batch that fails is kept, seen by reads, and written first once writes resume', async () => {
    await withStore(async (store) => {
      const db = store.db
      const g = gate(db)
      g.failNext()
      await put(db, { 'T/a': 'a' })
      g.release()
      while (!db.stopped) await sleep(5)
      assert.equal(db.getSync('T/a'), 'a', 'still seen while writes are stopped')
      const undo = stayFull(db)
      await rejectsWith(db.syncLog(), 'ENOSPC')
      await rejectsWith(put(db, { 'T/b': 'b' }), 'ENOSPC')
      assert.equal(db.getSync('T/b'), undefined, 'a write refused while stopped is not seen')
      assert.equal(db.getSync('T/a'), 'a')
      undo()
      await put(db, { 'T/c': 'c' }) // resumes first, then the kept batch goes ahead of it
      await db.syncLog()
      assert.ok(g.stored('T/a'), 'the kept batch was written')
      assert.ok(g.stored('T/c'))
    })
  })

  test('close reports acknowledged changes it could not write', async () => {
    await withStore(async (store) => {
      const db = store.db
      const g = gate(db)
      g.failNext()
      await put(db, { 'T/a': 'a', 'T/b': 'b' })
      await put(db, { 'T/c': 'c' })
      // the queue tries to resume at once for the second batch: the disk is still full
      stayFull(db)
      g.release()
      while (!db.stopped) await sleep(5)
      const err = await rejectsWith(store.close(), 'ENOSPC')
      assert.match(err.message, /2 acknowledged change\(s\) \(3 record\(s\)\) could not be written/)
    })
  })
})

describe('decoded records of an active layer', () => {
  test('are shared frozen, and every StoreLayer of the layer sees each write at once', async () => {
    await withStore(async (store) => {
      await store.prepare('w')
      const fs = store.fs('w')
      await rejectsWith(fs.stat('/f'), 'ENOENT') // an absent name, remembered as absent
      await fs.writeFile('/f', 'x')
      const ino = (await fs.stat('/f')).ino
      const layer = (await store.record('w', 'test')).layer!
      const a = new StoreLayer(layer, store.db)
      const b = new StoreLayer(layer, store.db)
      const rec = (await a.inode(ino))!
      assert.equal(await b.inode(ino), rec, 'one decoded record for every reader')
      assert.throws(() => { (rec as { mode: number }).mode = 0 }, TypeError)
      assert.throws(() => { rec.mtime[0] = 0 }, TypeError)
      assert.throws(() => { (rec as { uid: number }).uid = 5 }, TypeError)
      const entry = (await a.entry(1, 'f'))!
      assert.throws(() => { entry[0] = 7 }, TypeError)
      await fs.chmod('/f', 0o640)
      assert.equal((await b.inode(ino))!.mode & 0o7777, 0o640)
      await fs.rename('/f', '/g')
      assert.equal(await a.entry(1, 'f'), undefined)
      assert.deepEqual(await b.entry(1, 'g'), [ino, 8])
      await fs.unlink('/g')
      assert.equal(await a.entry(1, 'g'), undefined)
    })
  })

  test('a write that fails is not seen afterwards, even if it was read while queued', async () => {
    await withStore(async (store) => {
      await store.prepare('w')
      const fs = store.fs('w')
      await fs.writeFile('/f', 'x')
      await fs.chmod('/f', 0o644)
      await fs.sync()
      const ino = (await fs.stat('/f')).ino
      const layer = new StoreLayer((await store.record('w', 'test')).layer!, store.db)
      const g = gate(store.db)
      g.failNext()
      const txn = store.db.txn()
      txn.put(inodeKey(layer.id, ino), { ...(await layer.inode(ino))!, mode: 0o100600 } satisfies InodeRecord)
      const failing = txn.commit()
      assert.equal((await layer.inode(ino))!.mode, 0o100600, 'seen while queued')
      g.release()
      await rejectsWith(failing, 'ENOSPC')
      assert.equal((await layer.inode(ino))!.mode, 0o100644, 'gone with its failed batch')
      await store.db.resume()
    })
  })
})

describe('shared scans (directory listings)', () => {
  const rows = async (db: Db, prefix: string): Promise<string[]> => (await db.scanShared(prefix)).map(([k, v]) => `${k}=${decode<string>(v)}`)
  const fresh = async (db: Db, prefix: string): Promise<string[]> => {
    const out: string[] = []
    for await (const [k, v] of db.scan(prefix)) out.push(`${k}=${decode<string>(v)}`)
    return out
  }

  test('a listing is kept after its first scan and follows every write queued after it', async () => {
    await withStore(async (store) => {
      const db = store.db
      await put(db, { 'T/a': 'a0', 'T/c': 'c0' }, { behind: false })
      const first = await db.scanShared('T/')
      assert.equal(await db.scanShared('T/'), first, 'the second listing is the kept one')
      const g = gate(db)
      await put(db, { 'T/b': 'b1', 'T/c': null, 'T/\u{1F600}': 'astral', 'T/\uffff': 'bmp', 'Tx': 'outside' })
      assert.deepEqual(await rows(db, 'T/'), ['T/a=a0', 'T/b=b1', 'T/\uffff=bmp', 'T/\u{1F600}=astral'], 'in LevelDB key order, the delete applied')
      assert.deepEqual(await rows(db, 'T/'), await fresh(db, 'T/'))
      g.release()
      await db.syncLog()
      assert.deepEqual(await rows(db, 'T/'), await fresh(db, 'T/'), 'the same after landing')
    })
  })

  test('a directory just made is listed from memory, and a scan raced by a write is not kept', async () => {
    await withStore(async (store) => {
      const db = store.db
      db.scanStartsEmpty('N/')
      await put(db, { 'N/x': 'x' })
      assert.deepEqual(await rows(db, 'N/'), ['N/x=x'])
      await put(db, { 'R/a': 'a' }, { behind: false })
      const raced = db.scanShared('R/')
      await put(db, { 'R/b': 'b' })
      await raced
      assert.deepEqual(await rows(db, 'R/'), ['R/a=a', 'R/b=b'], 'scanned again, the write seen')
    })
  })

  test('a listing that showed a failed write shows it no more', async () => {
    await withStore(async (store) => {
      const db = store.db
      await put(db, { 'T/a': 'a' }, { behind: false })
      await db.scanShared('T/')
      const g = gate(db)
      g.failNext()
      const failing = put(db, { 'T/z': 'z' }, { behind: false })
      assert.deepEqual(await rows(db, 'T/'), ['T/a=a', 'T/z=z'], 'seen while queued')
      g.release()
      await rejectsWith(failing, 'ENOSPC')
      assert.deepEqual(await rows(db, 'T/'), ['T/a=a'], 'gone with its failed batch')
      await db.resume()
    })
  })
})
