import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { rejectsWith, withStore } from './helpers.js'

/** SnapshotFs.setattr: several attribute changes as one setattr(2), in the kernel's order and checks. */
describe('setattr', () => {
  test('owner, mode and times in one call, answered with the attributes after', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/f', 'data')
    const st = await fs.setattr('/f', { uid: 1000, gid: 1001, mode: 0o640, atime: 5n * 1_000_000_000n + 7n, mtime: 6n * 1_000_000_000n + 9n })
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777, st.atimeNs, st.mtimeNs], [1000, 1001, 0o640, 5_000_000_007n, 6_000_000_009n])
    const again = await fs.lstat('/f')
    assert.deepEqual([again.uid, again.gid, again.mode & 0o7777, again.mtimeNs], [1000, 1001, 0o640, 6_000_000_009n])
  }))

  test('a time left out stays; one given as null is now', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/f', 'data')
    await fs.setattr('/f', { atime: 1n, mtime: 2n })
    const before = Date.now()
    const st = await fs.setattr('/f', { mtime: null })
    assert.equal(st.atimeNs, 1n)
    assert.ok(st.mtimeMs >= before - 1000, 'mtime set to now')
  }))

  test('a refused step changes nothing, not even the steps before it', () => withStore(async (store) => {
    await store.prepare('a')
    await store.fs('a').writeFile('/f', 'data')
    await store.fs('a').chown('/f', 1000, 1000)
    const user = store.fs('a', { creds: { uid: 1000, gid: 1000 } })
    const mode = (await user.lstat('/f')).mode & 0o777
    // the owner may chmod, but not give the file away
    await rejectsWith(user.setattr('/f', { mode: 0o600, uid: 2000 }), 'EPERM', '/f')
    const st = await user.lstat('/f')
    assert.deepEqual([st.uid, st.mode & 0o777], [1000, mode])
    const other = store.fs('a', { creds: { uid: 2000, gid: 2000 } })
    await rejectsWith(other.setattr('/f', { mtime: 5n }), 'EPERM', '/f')
    assert.notEqual((await other.lstat('/f')).mtimeNs, 5n)
  }))

  test('timesChecked lets a caller set times the kernel has checked', () => withStore(async (store) => {
    await store.prepare('a')
    await store.fs('a').writeFile('/f', 'data')
    const other = store.fs('a', { creds: { uid: 2000, gid: 2000 } })
    const st = await other.setattr('/f', { mtime: 5n, timesChecked: true })
    assert.equal(st.mtimeNs, 5n)
    // owner and mode are checked all the same
    await rejectsWith(other.setattr('/f', { mode: 0o777, timesChecked: true }), 'EPERM', '/f')
  }))

  test('a chown that changes no id still drops setuid and setgid, as the kernel', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/f', 'data')
    await fs.chmod('/f', 0o6755)
    const st = await fs.setattr('/f', { uid: -1, gid: -1 })
    assert.equal(st.mode & 0o7777, 0o755)
  }))

  test('a chmod copies a lower file up as a copy: the upper layer adds no data', () => withStore(async (store) => {
    await store.prepare('b')
    await store.fs('b').writeFile('/f', Buffer.alloc(200_000, 7))
    await store.commit('base', 'b')
    await store.prepare('a', 'base')
    const fs = store.fs('a')
    await fs.setattr('/f', { mode: 0o600, mtime: 5n })
    assert.equal((await store.usage('a')).size, 0)
    assert.equal((await fs.readFile('/f')).length, 200_000)
  }))

  test('through an open file: the same change, seen by path, and by path again once renamed', () => withStore(async (store) => {
    await store.prepare('a')
    const fs = store.fs('a')
    await fs.writeFile('/f', 'data')
    const fh = await fs.open('/f', 'r+')
    try {
      const st = await fs.setattr('/f', { mode: 0o600, mtime: 7n }, { open: fh })
      assert.deepEqual([st.mode & 0o777, st.mtimeNs], [0o600, 7n])
      assert.deepEqual([(await fs.lstat('/f')).mode & 0o777, (await fs.lstat('/f')).mtimeNs], [0o600, 7n])
      await fs.rename('/f', '/g')
      await fs.setattr('/g', { mode: 0o640 }, { open: fh })
      assert.equal((await fs.lstat('/g')).mode & 0o777, 0o640)
      await rejectsWith(fs.lstat('/f'), 'ENOENT', '/f')
    } finally {
      await fh.close()
    }
  }))

  test('through an open file that is not in the upper layer or has no name: by path, as without it', () => withStore(async (store) => {
    await store.prepare('b')
    await store.fs('b').writeFile('/low', 'lower')
    await store.commit('base', 'b')
    await store.prepare('a', 'base')
    const fs = store.fs('a')
    const low = await fs.open('/low', 'r')
    try {
      await fs.setattr('/low', { mode: 0o600 }, { open: low })
      assert.equal((await fs.lstat('/low')).mode & 0o777, 0o600)
    } finally {
      await low.close()
    }
    await fs.writeFile('/gone', 'x')
    const gone = await fs.open('/gone', 'r+')
    try {
      await fs.unlink('/gone')
      await rejectsWith(fs.setattr('/gone', { mode: 0o600 }, { open: gone }), 'ENOENT', '/gone')
    } finally {
      await gone.close()
    }
    assert.deepEqual(await fs.readdir('/'), ['low'])
  }))
})
