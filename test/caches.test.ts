import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, chmod, mkdir, rename as hostRename, stat as hostStat, symlink, writeFile } from 'node:fs/promises'
import { removeAttribute, setAttribute } from 'fs-xattr'
import { join } from 'node:path'
import { Store, openDirStack, type SnapshotInfo } from '../engine/index.js'
import { RecordCache } from '../engine/store/recordcache.js'
import { INODE_PREFIX } from '../engine/store/keys.js'
import type { IndexTree } from '../engine/store/mergeindex.js'
import type { InodeRecord } from '../engine/store/records.js'
import { DirLayer } from '../engine/layerdir/layer.js'
import { allocDirLayerIno } from '../engine/layerdir/inos.js'
import { rejectsWith, withStore, withTempDir } from './helpers.js'

/**
 * The caches under the lower layers: decoded records of committed snapshots (one cache per
 * Store), and what a read-only directory layer read of the host (for the life of the layer).
 * Each must serve repeated reads without going back to the store or the host, and none may
 * ever show what a writable layer no longer holds.
 */

async function committed(store: Store, name: string, parent: string | undefined, files: Record<string, string>): Promise<SnapshotInfo> {
  const key = `${name}.build`
  await store.prepare(key, parent)
  const fs = store.fs(key)
  for (const [p, data] of Object.entries(files)) {
    const dir = p.slice(0, p.lastIndexOf('/'))
    if (dir) await fs.mkdir(dir, { recursive: true })
    await fs.writeFile(p, data)
  }
  return store.commit(name, key)
}

/** Records the keys of every Db.get of the store while it is installed. */
function spyGets(store: Store): { keys: string[]; stop: () => void } {
  const db = store.db as unknown as { get: (key: string) => Promise<unknown> }
  const original = db.get
  const keys: string[] = []
  db.get = function (this: unknown, key: string) {
    keys.push(key)
    return original.call(this, key)
  }
  return { keys, stop: () => { db.get = original } }
}

const inodeGets = (keys: string[], layer: string): string[] => keys.filter((k) => k.startsWith(`${INODE_PREFIX}${layer}/`))

describe('records of committed snapshots', () => {
  test('a lower inode record is read from the store once, by committed and active snapshots alike', () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/a/f': 'one', '/a/g': 'two' })
    const layer = (await store.record('base', 'stat')).layer!
    await store.prepare('work', 'base')
    const spy = spyGets(store)
    try {
      const fs = store.fs('base')
      assert.equal((await fs.stat('/a/f')).size, 3)
      assert.ok(inodeGets(spy.keys, layer).length > 0, 'the first stat reads the records')
      spy.keys.length = 0
      for (let i = 0; i < 3; i++) await fs.stat('/a/f')
      assert.equal((await store.fs('work').stat('/a/f')).size, 3)
      assert.deepEqual(inodeGets(spy.keys, layer), [], 'later stats, in any snapshot over base, read none')

      store.nodeCache.clear()
      spy.keys.length = 0
      await fs.stat('/a/g')
      assert.ok(inodeGets(spy.keys, layer).length > 0, 'a cleared cache reads again')
    } finally {
      spy.stop()
    }
  }))

  test('a shared record is frozen, and changes in a child leave the parent as it was', () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/f': 'data' })
    const base = store.fs('base')
    await base.chmod('/f', 0o600).catch(() => undefined) // EROFS: committed
    const before = await base.stat('/f')
    const tree = (await store.tree('base')) as IndexTree
    const node = (await tree.lookup(tree.root, 'f'))!
    const rec = await tree.inode(node)
    assert.ok(Object.isFrozen(rec) && Object.isFrozen(rec.mtime))
    assert.equal(await tree.inode(node), rec, 'the same record is served again')
    assert.throws(() => { (rec as { mode: number }).mode = 0 }, TypeError)

    await store.prepare('work', 'base')
    const fs = store.fs('work')
    await fs.chmod('/f', 0o640)
    await fs.setxattr('/f', 'user.k', Buffer.from('v'))
    await fs.utimes('/f', 1000, 2000)
    await fs.appendFile('/f', '+more')
    assert.equal((await fs.stat('/f')).mode & 0o777, 0o640)
    assert.equal((await fs.readFile('/f')).toString(), 'data+more')
    const after = await base.stat('/f')
    assert.equal(after.mode, before.mode)
    assert.equal(after.size, 4)
    assert.equal(after.mtimeMs, before.mtimeMs)
    assert.deepEqual(await base.listxattr('/f'), [])
    assert.equal((await base.readFile('/f')).toString(), 'data')
  }))

  test('a directory listing is shared and read-only; a child lists its own names', () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/d/a': '1', '/d/b': '2' })
    const tree = (await store.tree('base')) as IndexTree
    const d = (await tree.lookup(tree.root, 'd'))!
    const list = await tree.list(d)
    assert.deepEqual(list.map(([n]) => n), ['a', 'b'])
    assert.equal(await tree.list(d), list)
    assert.throws(() => list.push(['c', list[0][1]]), TypeError)
    await store.prepare('work', 'base')
    const fs = store.fs('work')
    await fs.writeFile('/d/c', '3')
    await fs.unlink('/d/a')
    assert.deepEqual((await fs.readdir('/d')).sort(), ['b', 'c'])
    assert.deepEqual((await store.fs('base').readdir('/d')).sort(), ['a', 'b'])
  }))

  test('a snapshot removed and collected leaves nothing that a new one could be served', () => withStore(async (store) => {
    const a = await committed(store, 'a', undefined, { '/d/f': 'one' })
    const layerA = (await store.record('a', 'stat')).layer!
    assert.equal((await store.fs('a').stat('/d/f')).size, 3)
    assert.deepEqual(await store.fs('a').readdir('/d'), ['f'])
    await store.remove(a.name)
    await store.gc()
    await committed(store, 'a', undefined, { '/d/f': 'second', '/d/g': 'x' })
    const layerB = (await store.record('a', 'stat')).layer!
    assert.notEqual(layerB, layerA, 'layer ids are never reused')
    const fs = store.fs('a')
    assert.equal((await fs.stat('/d/f')).size, 6)
    assert.equal((await fs.readFile('/d/f')).toString(), 'second')
    assert.deepEqual((await fs.readdir('/d')).sort(), ['f', 'g'])
  }))

  test('records stay under the byte bound, the newest kept', () => {
    const cache = new RecordCache(64 * 1024)
    const rec = (i: number): InodeRecord => ({ mode: 0o100644, uid: 0, gid: 0, rdev: 0, size: i, nlink: 1, atime: [0, 0], mtime: [0, 0], ctime: [0, 0], xattrs: { 'user.pad': Buffer.alloc(1000) } })
    for (let i = 0; i < 2000; i++) cache.setInode('l1', i, rec(i))
    const { records, bytes } = cache.stats
    assert.ok(bytes <= 64 * 1024, `${bytes} bytes kept`)
    assert.ok(records > 10 && records < 2000, `${records} records kept`)
    assert.equal(cache.inode('l1', 1999)?.size, 1999)
    assert.equal(cache.inode('l1', 0), undefined)
  })
})

describe('directory layers', () => {
  test('a lower dir is read once per object for the life of the stack; a new stack reads it again', () => withTempDir('strata-cache-', async (dir) => {
    const low = join(dir, 'low')
    await mkdir(join(low, 'd'), { recursive: true })
    await writeFile(join(low, 'd/f'), 'data')
    await chmod(join(low, 'd/f'), 0o644)
    const fs = await openDirStack({ lowerdir: [low] })
    assert.equal((await fs.stat('/d/f')).mode & 0o777, 0o644)
    await rejectsWith(fs.stat('/d/new'), 'ENOENT', '/d/new')
    assert.deepEqual(await fs.readdir('/d'), ['f'])

    // Not allowed under a mounted overlay (the kernel's rule): done here only to show what is kept.
    await chmod(join(low, 'd/f'), 0o600)
    await writeFile(join(low, 'd/new'), 'n')
    assert.equal((await fs.stat('/d/f')).mode & 0o777, 0o644, 'the record read first is kept')
    await rejectsWith(fs.stat('/d/new'), 'ENOENT', '/d/new')
    assert.deepEqual(await fs.readdir('/d'), ['f'])

    const again = await openDirStack({ lowerdir: [low] })
    assert.equal((await again.stat('/d/f')).mode & 0o777, 0o600)
    assert.equal((await again.stat('/d/new')).size, 1)
    assert.deepEqual((await again.readdir('/d')).sort(), ['f', 'new'])
  }))

  test('a listing read first answers later lookups, those of missing names included', () => withTempDir('strata-cache-', async (dir) => {
    const low = join(dir, 'low')
    await mkdir(join(low, 'd'), { recursive: true })
    for (const n of ['a', 'b', 'c']) await writeFile(join(low, 'd', n), n)
    const fs = await openDirStack({ lowerdir: [low] })
    assert.deepEqual(await fs.readdir('/d'), ['a', 'b', 'c'])
    await writeFile(join(low, 'd/z'), 'z')
    await rejectsWith(fs.stat('/d/z'), 'ENOENT', '/d/z')
    for (const n of ['a', 'b', 'c']) assert.equal((await fs.readFile(`/d/${n}`)).toString(), n)
  }))

  test('a directory upper is read exactly: host changes and writes show at once', () => withTempDir('strata-cache-', async (dir) => {
    const [low, up, work] = ['low', 'up', 'work'].map((n) => join(dir, n))
    for (const d of [low, up, work]) await mkdir(d)
    await writeFile(join(low, 'f'), 'lower')
    await chmod(join(low, 'f'), 0o644)
    const fs = await openDirStack({ lowerdir: [low], upperdir: up, workdir: work })
    await rejectsWith(fs.stat('/u'), 'ENOENT', '/u')
    await writeFile(join(up, 'u'), 'abc')
    assert.equal((await fs.stat('/u')).size, 3, 'no name of the upper is remembered as missing')
    await appendFile(join(up, 'u'), 'def')
    assert.equal((await fs.stat('/u')).size, 6, 'nor its attributes')

    assert.equal((await fs.stat('/f')).mode & 0o777, 0o644)
    await fs.chmod('/f', 0o600)
    await fs.appendFile('/f', '+')
    assert.equal((await fs.stat('/f')).mode & 0o777, 0o600)
    assert.equal((await fs.readFile('/f')).toString(), 'lower+')
    assert.equal((await hostStat(join(low, 'f'))).mode & 0o777, 0o644, 'the lower file is untouched')
    await fs.unlink('/f')
    await rejectsWith(fs.stat('/f'), 'ENOENT', '/f')
    await fs.writeFile('/f', 'new')
    assert.equal((await fs.readFile('/f')).toString(), 'new')
    const lowerOnly = await openDirStack({ lowerdir: [low] })
    assert.equal((await lowerOnly.readFile('/f')).toString(), 'lower')
  }))

  test('a directory upper keeps the xattrs it read only while the host object stays the same', () => withTempDir('strata-cache-', async (dir) => {
    const [low, up, work] = ['low', 'up', 'work'].map((n) => join(dir, n))
    for (const d of [low, up, work]) await mkdir(d)
    for (const d of ['d', 'e']) await mkdir(join(low, d))
    await writeFile(join(low, 'd/x'), 'x')
    await writeFile(join(low, 'e/y'), 'y')
    const fs = await openDirStack({ lowerdir: [low], upperdir: up, workdir: work })
    await fs.writeFile('/f', 'abc')
    await fs.setxattr('/f', 'user.a', '1')
    assert.equal((await fs.getxattr('/f', 'user.a')).toString(), '1')
    assert.equal((await fs.getxattr('/f', 'user.a')).toString(), '1')
    // host changes of xattrs advance the ctime, and show at once
    await setAttribute(join(up, 'f'), 'user.a', Buffer.from('2'))
    assert.equal((await fs.getxattr('/f', 'user.a')).toString(), '2')
    await removeAttribute(join(up, 'f'), 'user.a')
    assert.deepEqual(await fs.listxattr('/f'), [])
    // so does another object under the same name
    await fs.symlink('one', '/l')
    assert.equal(await fs.readlink('/l'), 'one')
    await symlink('two', join(up, 'l2'))
    await hostRename(join(up, 'l2'), join(up, 'l'))
    assert.equal(await fs.readlink('/l'), 'two')
    // and the upper's own changes: xattrs, a renamed dir's redirect, a dir made where one was removed
    await fs.setxattr('/f', 'user.b', 'own')
    assert.deepEqual(await fs.listxattr('/f'), ['user.b'])
    await fs.removexattr('/f', 'user.b')
    assert.deepEqual(await fs.listxattr('/f'), [])
    assert.deepEqual(await fs.readdir('/d'), ['x'])
    await fs.mkdir('/d/sub')
    assert.deepEqual(await fs.readdir('/d'), ['sub', 'x'])
    await fs.rename('/d', '/r')
    assert.deepEqual(await fs.readdir('/r'), ['sub', 'x'])
    await rejectsWith(fs.readdir('/d'), 'ENOENT', '/d')
    await fs.rename('/r', '/d')
    assert.deepEqual(await fs.readdir('/d'), ['sub', 'x'])
    assert.deepEqual(await fs.readdir('/e'), ['y'])
    await fs.unlink('/e/y')
    await fs.rmdir('/e')
    await fs.mkdir('/e')
    assert.deepEqual(await fs.readdir('/e'), [])
    await fs.unlink('/f')
    await rejectsWith(fs.getxattr('/f', 'user.a'), 'ENOENT', '/f')
    await fs.writeFile('/f', 'new')
    assert.deepEqual(await fs.listxattr('/f'), [])
    // a stack opened again reads the same tree from the host
    const again = await openDirStack({ lowerdir: [low], upperdir: up, workdir: work })
    for (const p of ['/', '/d', '/e']) assert.deepEqual(await again.readdir(p), await fs.readdir(p))
    assert.equal(await again.readlink('/l'), 'two')
  }))

  test('a layer keeps its reads only when asked to, or when it is a plain lower layer', () => withTempDir('strata-cache-', async (dir) => {
    await writeFile(join(dir, 'f'), 'x')
    const exact = new DirLayer(dir, { allocIno: allocDirLayerIno, cacheHostReads: false })
    const kept = new DirLayer(dir, { allocIno: allocDirLayerIno })
    for (const layer of [exact, kept]) {
      assert.ok(await layer.entry(1, 'f'))
      assert.equal(await layer.entry(1, 'g'), undefined)
    }
    const keptRec = await kept.inode((await kept.entry(1, 'f'))![0])
    assert.ok(Object.isFrozen(keptRec))
    await writeFile(join(dir, 'g'), 'y')
    await appendFile(join(dir, 'f'), 'yz')
    assert.ok(await exact.entry(1, 'g'))
    assert.equal((await exact.inode((await exact.entry(1, 'f'))![0]))?.size, 3)
    assert.equal(await kept.entry(1, 'g'), undefined)
    assert.equal((await kept.inode((await kept.entry(1, 'f'))![0]))?.size, 1)
  }))

  test('directory layers over a store snapshot: both kinds of lower cached, the upper exact', () => withStore(async (store) => withTempDir('strata-cache-', async (dir) => {
    await committed(store, 'base', undefined, { '/s/f': 'store' })
    const [low, up, work] = ['low', 'up', 'work'].map((n) => join(dir, n))
    for (const d of [low, up, work]) await mkdir(d)
    await mkdir(join(low, 's'))
    await writeFile(join(low, 's/g'), 'dir')
    const fs = store.stackFs({ base: 'base', lowerdir: [low], upperdir: up, workdir: work })
    for (let i = 0; i < 2; i++) {
      assert.deepEqual((await fs.readdir('/s')).sort(), ['f', 'g'])
      assert.equal((await fs.readFile('/s/f')).toString(), 'store')
      assert.equal((await fs.readFile('/s/g')).toString(), 'dir')
    }
    await fs.writeFile('/s/f', 'changed')
    await fs.rename('/s/g', '/s/h')
    assert.deepEqual((await fs.readdir('/s')).sort(), ['f', 'h'])
    assert.equal((await fs.readFile('/s/f')).toString(), 'changed')
    assert.equal((await store.fs('base').readFile('/s/f')).toString(), 'store')
  })))
})
