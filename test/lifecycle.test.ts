import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Store, type SnapshotInfo, type WalkFilter } from '../engine/index.js'
import { countChunks, patternBytes, rejectsWith, tempStore, withStore } from './helpers.js'

/**
 * The snapshot API as containerd's Snapshotter defines it: prepare, view, commit, remove, stat,
 * update, usage, walk; and the maintenance calls gc and fsck.
 */

const CHUNK = 64 * 1024

async function names(store: Store, filter?: WalkFilter): Promise<string[]> {
  const out: string[] = []
  for await (const i of store.walk(filter)) out.push(i.name)
  return out.sort()
}

/** A committed snapshot `name` over `parent` holding `files`. */
async function committed(store: Store, name: string, parent: string | undefined, files: Record<string, string | Buffer>): Promise<SnapshotInfo> {
  const key = `${name}.build`
  await store.prepare(key, parent)
  const fs = store.fs(key)
  for (const [p, data] of Object.entries(files)) await fs.writeFile(p, data)
  return store.commit(name, key)
}

describe('snapshot lifecycle', () => {
  test('prepare, stat, commit, view and remove', () => withStore(async (store) => {
    const a = await store.prepare('a', undefined, { labels: { role: 'build' } })
    assert.equal(a.kind, 'active')
    assert.equal(a.parent, '')
    assert.deepEqual(a.labels, { role: 'build' })
    await store.fs('a').writeFile('/f', 'data')
    const c = await store.commit('base', 'a', { labels: { release: '1' } })
    assert.equal(c.kind, 'committed')
    assert.deepEqual(c.labels, { role: 'build', release: '1' })
    await rejectsWith(store.stat('a'), 'ENOENT', 'a')
    assert.deepEqual(await store.stat('base'), c)
    const v = await store.view('v', 'base')
    assert.equal(v.kind, 'view')
    assert.equal(v.parent, 'base')
    assert.equal(await store.fs('v').readFile('/f', 'utf8'), 'data')
    const b = await store.prepare('b', 'base')
    assert.equal(b.parent, 'base')
    assert.equal(await store.fs('b').readFile('/f', 'utf8'), 'data')
    await store.remove('v')
    await store.remove('b')
    await store.remove('base')
    assert.deepEqual(await names(store), [])
    await rejectsWith(store.stat('base'), 'ENOENT', 'base')
  }))

  test('update replaces the labels and nothing else', () => withStore(async (store) => {
    const before = await store.prepare('a', undefined, { labels: { x: '1', y: '2' } })
    const after = await store.update('a', { labels: { z: '3' } })
    assert.deepEqual(after.labels, { z: '3' })
    assert.equal(after.kind, before.kind)
    assert.equal(after.parent, before.parent)
    assert.equal(after.created, before.created)
    assert.ok(after.updated >= before.updated)
    assert.deepEqual((await store.stat('a')).labels, { z: '3' })
  }))

  test('walk filters by kind, parent and label', () => withStore(async (store) => {
    await committed(store, 'base', undefined, {})
    await committed(store, 'mid', 'base', {})
    await store.prepare('work', 'mid', { labels: { team: 'core', tier: 'gold' } })
    await store.prepare('scratch', 'base', { labels: { team: 'web' } })
    await store.view('look', 'base', { labels: { tier: 'gold' } })
    assert.deepEqual(await names(store), ['base', 'look', 'mid', 'scratch', 'work'])
    assert.deepEqual(await names(store, { kind: 'committed' }), ['base', 'mid'])
    assert.deepEqual(await names(store, { kind: 'active' }), ['scratch', 'work'])
    assert.deepEqual(await names(store, { kind: 'view' }), ['look'])
    assert.deepEqual(await names(store, { parent: 'base' }), ['look', 'mid', 'scratch'])
    assert.deepEqual(await names(store, { parent: '' }), ['base'])
    assert.deepEqual(await names(store, { label: 'team' }), ['scratch', 'work'])
    assert.deepEqual(await names(store, { label: 'team=core' }), ['work'])
    assert.deepEqual(await names(store, { label: 'tier=gold', kind: 'view' }), ['look'])
    assert.deepEqual(await names(store, { label: 'team=' }), [])
  }))

  test('only committed snapshots can be parents', () => withStore(async (store) => {
    await committed(store, 'base', undefined, {})
    await store.prepare('act', 'base')
    await store.view('v', 'base')
    await rejectsWith(store.prepare('x', 'act'), 'EINVAL', 'act')
    await rejectsWith(store.prepare('x', 'v'), 'EINVAL', 'v')
    await rejectsWith(store.view('x', 'act'), 'EINVAL', 'act')
    await rejectsWith(store.prepare('x', 'missing'), 'ENOENT', 'missing')
    await rejectsWith(store.stat('x'), 'ENOENT', 'x')
  }))

  test('keys and names share one namespace', () => withStore(async (store) => {
    await committed(store, 'base', undefined, {})
    await store.prepare('act', 'base')
    await store.view('v', 'base')
    for (const taken of ['base', 'act', 'v']) {
      await rejectsWith(store.prepare(taken, 'base'), 'EEXIST', taken)
      await rejectsWith(store.view(taken, 'base'), 'EEXIST', taken)
    }
    await store.prepare('other', 'base')
    for (const taken of ['base', 'act', 'v']) await rejectsWith(store.commit(taken, 'other'), 'EEXIST', taken)
    assert.equal((await store.stat('other')).kind, 'active')
    assert.equal((await store.stat('act')).kind, 'active')
  }))

  test('remove refuses while children exist or files are open', () => withStore(async (store) => {
    await committed(store, 'base', undefined, {})
    await store.view('v', 'base')
    await rejectsWith(store.remove('base'), 'EBUSY', 'base')
    await store.remove('v')
    await store.prepare('act', 'base')
    await rejectsWith(store.remove('base'), 'EBUSY', 'base')
    const h = await store.fs('act').open('/f', 'w')
    await rejectsWith(store.remove('act'), 'EBUSY', 'act')
    await rejectsWith(store.commit('done', 'act'), 'EBUSY', 'act')
    await h.close()
    await store.remove('act')
    await store.remove('base')
    assert.deepEqual(await names(store), [])
  }))

  test('views and committed snapshots are read-only', () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/f': 'data' })
    await store.view('v', 'base')
    for (const key of ['v', 'base']) {
      const fs = store.fs(key)
      await rejectsWith(fs.writeFile('/f', 'x'), 'EROFS', '/f')
      await rejectsWith(fs.writeFile('/new', 'x'), 'EROFS', '/new')
      await rejectsWith(fs.open('/f', 'r+'), 'EROFS', '/f')
      await rejectsWith(fs.mkdir('/d'), 'EROFS', '/d')
      await rejectsWith(fs.unlink('/f'), 'EROFS', '/f')
      await rejectsWith(fs.rename('/f', '/g'), 'EROFS', '/f')
      await rejectsWith(fs.chmod('/f', 0o600), 'EROFS', '/f')
      await rejectsWith(fs.setxattr('/f', 'user.x', 'v'), 'EROFS', '/f')
      await rejectsWith(fs.symlink('/f', '/l'), 'EROFS', '/l')
      await rejectsWith(fs.access('/f', 2), 'EROFS', '/f')
      assert.equal(await fs.readFile('/f', 'utf8'), 'data')
    }
  }))

  test('only an active snapshot can be committed', () => withStore(async (store) => {
    await committed(store, 'base', undefined, {})
    await store.view('v', 'base')
    await rejectsWith(store.commit('again', 'base'), 'EINVAL', 'base')
    await rejectsWith(store.commit('again', 'v'), 'EINVAL', 'v')
    await rejectsWith(store.commit('again', 'missing'), 'ENOENT', 'missing')
    await rejectsWith(store.stat('again'), 'ENOENT', 'again')
  }))

  test('an fs of a snapshot stops working once the snapshot is committed or removed', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/f', 'before commit')
    await store.commit('base', 'a')
    await rejectsWith(fs.writeFile('/g', 'after commit'), 'ENOENT', 'a')
    await rejectsWith(fs.readFile('/f'), 'ENOENT', 'a')
    assert.deepEqual(await store.fs('base').readdir('/'), ['f'])
    await store.prepare('b', 'base')
    const child = store.fs('b')
    await child.writeFile('/g', 'g')
    await store.remove('b')
    await rejectsWith(child.writeFile('/h', 'after remove'), 'ENOENT', 'b')
    // the key can be used again: an fs made for it now sees the new snapshot
    await store.prepare('b', 'base')
    assert.deepEqual(await store.fs('b').readdir('/'), ['f'])
    assert.deepEqual(await child.readdir('/'), ['f'])
    const report = await store.fsck()
    assert.ok(report.ok, report.problems.join('\n'))
  }))
})

describe('data accounting', () => {
  test('commit copies no data', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/big', patternBytes(10 * CHUNK, 1))
    await fs.writeFile('/small', 'small')
    const before = await countChunks(store)
    assert.ok(before >= 10)
    await store.commit('base', 'a')
    assert.equal(await countChunks(store), before)
    assert.ok((await store.fs('base').readFile('/big')).equals(patternBytes(10 * CHUNK, 1)))
  }))

  test("usage counts the snapshot's own layer only", () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/big': patternBytes(16 * CHUNK, 1) })
    assert.deepEqual(await store.usage('base'), { size: 16 * CHUNK, inodes: 1 })
    await store.prepare('a', 'base')
    const fs = store.fs('a')
    assert.deepEqual(await store.usage('a'), { size: 0, inodes: 0 })
    await fs.writeFile('/new', patternBytes(CHUNK + 100, 2))
    const h = await fs.open('/big', 'r+')
    await h.write(Buffer.alloc(4096, 1), 0, 4096, 5 * CHUNK)
    await h.close()
    // the new file's two chunks as stored (the second holds 100 bytes) and the one chunk the
    // write changed; names: /new and /big
    assert.deepEqual(await store.usage('a'), { size: 2 * CHUNK + 100, inodes: 2 })
    await store.view('v', 'base')
    assert.deepEqual(await store.usage('v'), { size: 0, inodes: 0 })
    await store.commit('top', 'a')
    assert.deepEqual(await store.usage('top'), { size: 2 * CHUNK + 100, inodes: 2 })
    assert.deepEqual(await store.usage('base'), { size: 16 * CHUNK, inodes: 1 })
  }))

  test('usage of a layer that only unlinked one name of a hard link holds no data', () => withStore(async (store) => {
    await store.prepare('b')
    const b = store.fs('b')
    await b.writeFile('/a', patternBytes(4 * CHUNK, 3))
    await b.link('/a', '/b')
    await store.commit('base', 'b')
    await store.prepare('a', 'base')
    await store.fs('a').unlink('/a')
    assert.deepEqual(await store.usage('a'), { size: 0, inodes: 1 })
  }))

  test('gc removes what removed snapshots alone used and keeps everything live', () => withStore(async (store) => {
    const shared = patternBytes(4 * CHUNK, 10)
    const gone = patternBytes(4 * CHUNK, 11)
    const kept = patternBytes(4 * CHUNK, 12)
    await committed(store, 'base', undefined, { '/shared': shared })
    await committed(store, 'doomed', 'base', { '/gone': gone })
    await store.prepare('work', 'base')
    const fs = store.fs('work')
    await fs.writeFile('/kept', kept)
    // a file that is unlinked but still open keeps its chunks
    await fs.writeFile('/open', patternBytes(3 * CHUNK, 13))
    const h = await fs.open('/open', 'r')
    await fs.unlink('/open')
    const before = await countChunks(store)
    await store.remove('doomed')
    const report = await store.gc()
    assert.equal(report.chunksRemoved, 4)
    assert.equal(report.bytesRemoved, 4 * CHUNK)
    assert.equal(report.layersRemoved, 0)
    assert.equal(await countChunks(store), before - 4)
    assert.ok((await h.readFile()).equals(patternBytes(3 * CHUNK, 13)))
    await h.close()
    assert.ok((await fs.readFile('/kept')).equals(kept))
    assert.ok((await fs.readFile('/shared')).equals(shared))
    assert.ok((await store.fs('base').readFile('/shared')).equals(shared))
    const again = await store.gc()
    assert.equal(again.chunksRemoved, 3, 'the closed unlinked file goes on the next gc')
    const fsck = await store.fsck({ verifyData: true })
    assert.ok(fsck.ok, fsck.problems.join('\n'))
  }))

  test('gc after commit over a removed parent chain keeps the committed data', () => withStore(async (store) => {
    await committed(store, 'l1', undefined, { '/one': patternBytes(2 * CHUNK, 1) })
    await committed(store, 'l2', 'l1', { '/two': patternBytes(2 * CHUNK, 2) })
    await store.prepare('tmp', 'l2')
    await store.fs('tmp').writeFile('/tmp', patternBytes(2 * CHUNK, 3))
    await store.remove('tmp')
    const report = await store.gc()
    assert.equal(report.chunksRemoved, 2)
    assert.equal(report.layersRemoved, 0)
    assert.ok((await store.fs('l2').readFile('/one')).equals(patternBytes(2 * CHUNK, 1)))
    assert.ok((await store.fsck()).ok)
  }))
})

describe('fsck', () => {
  test('detects a missing chunk', () => withStore(async (store) => {
    await committed(store, 'base', undefined, { '/f': patternBytes(2 * CHUNK, 5) })
    assert.ok((await store.fsck()).ok)
    let victim: string | undefined
    for await (const k of store.db.scanKeys('C/')) victim ??= k
    assert.ok(victim)
    const txn = store.db.txn()
    txn.del(victim)
    await txn.commit()
    const report = await store.fsck()
    assert.equal(report.ok, false)
    assert.ok(report.problems.some((p) => p.includes(victim!.slice(2))), report.problems.join('\n'))
  }))

  test('detects a missing index node', () => withStore(async (store) => {
    await store.prepare('a')
    await store.fs('a').mkdir('/d')
    await store.fs('a').writeFile('/d/f', 'x')
    await store.commit('base', 'a')
    const nodes: string[] = []
    for await (const k of store.db.scanKeys('X/')) nodes.push(k)
    assert.ok(nodes.length >= 2)
    const txn = store.db.txn()
    for (const k of nodes) if (k !== nodes[0]) txn.del(k)
    await txn.commit()
    const report = await store.fsck()
    assert.equal(report.ok, false)
    assert.ok(report.problems.some((p) => /index node/.test(p)), report.problems.join('\n'))
  }))
})

describe('persistence and depth', () => {
  test('everything survives close and reopen', async () => {
    const t = await tempStore()
    try {
      await committed(t.store, 'base', undefined, { '/f': 'committed data' })
      await t.store.prepare('work', 'base', { labels: { k: 'v' } })
      const fs = t.store.fs('work')
      await fs.writeFile('/g', patternBytes(3 * CHUNK + 5, 9))
      const h = await fs.open('/h', 'w')
      await h.write(Buffer.from('unflushed until close'))
      const inos = [(await fs.stat('/f')).ino, (await fs.stat('/g')).ino]
      await h.close()
      await t.store.close()
      const store = await Store.open({ path: t.path })
      try {
        assert.deepEqual((await store.stat('work')).labels, { k: 'v' })
        const again = store.fs('work')
        assert.equal(await again.readFile('/f', 'utf8'), 'committed data')
        assert.ok((await again.readFile('/g')).equals(patternBytes(3 * CHUNK + 5, 9)))
        assert.equal(await again.readFile('/h', 'utf8'), 'unflushed until close')
        assert.deepEqual([(await again.stat('/f')).ino, (await again.stat('/g')).ino], inos)
        await again.writeFile('/new', 'n')
        const newIno = (await again.stat('/new')).ino
        assert.ok(!inos.includes(newIno) && newIno !== (await again.stat('/h')).ino, 'inode numbers are not reused')
        assert.ok((await store.fsck({ verifyData: true })).ok)
      } finally {
        await store.close()
      }
    } finally {
      await t.cleanup()
    }
  })

  test('a stack of 200 layers shows the bottom file', () => withStore(async (store) => {
    let parent: string | undefined
    for (let i = 0; i < 200; i++) {
      await store.prepare('work', parent)
      await store.fs('work').writeFile(`/f${i}`, `layer ${i}`)
      if (i === 100) await store.fs('work').unlink('/f50')
      await store.commit(`l${i}`, 'work')
      parent = `l${i}`
    }
    await store.prepare('top', parent)
    const fs = store.fs('top')
    assert.equal(await fs.readFile('/f0', 'utf8'), 'layer 0')
    assert.equal(await fs.readFile('/f199', 'utf8'), 'layer 199')
    await rejectsWith(fs.stat('/f50'), 'ENOENT', '/f50')
    assert.equal((await fs.readdir('/')).length, 199)
    await fs.writeFile('/f0', 'changed at the top')
    assert.equal(await store.fs('l199').readFile('/f0', 'utf8'), 'layer 0')
    assert.equal(await fs.readFile('/f0', 'utf8'), 'changed at the top')
  }))
})
