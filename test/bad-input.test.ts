import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { FsError, type SnapshotFs, type Store } from '../engine/index.js'
import { dumpDb, rejectsWith, withStore } from './helpers.js'

/**
 * Bad input gives an FsError with an errno-style code and a message naming the path (or the
 * snapshot key), and changes nothing: the whole database is compared before and after.
 */

/** A store with a committed base and an active snapshot 'work' over it, with something in each. */
async function populated(store: Store): Promise<SnapshotFs> {
  await store.prepare('build')
  const b = store.fs('build')
  await b.mkdir('/dir')
  await b.writeFile('/dir/lower', 'lower')
  await b.writeFile('/file', 'file')
  await store.commit('base', 'build')
  await store.prepare('work', 'base', { labels: { k: 'v' } })
  const fs = store.fs('work')
  await fs.writeFile('/upper', 'upper')
  await fs.symlink('/file', '/link')
  return fs
}

/** Runs `bad` and checks that the database is the same afterwards. */
async function unchanged(store: Store, bad: () => Promise<void>): Promise<void> {
  const before = await dumpDb(store)
  await bad()
  assert.deepEqual(await dumpDb(store), before)
}

/** Expects a synchronous throw of an FsError with `code` whose message names `path`. */
function throwsWith(fn: () => unknown, code: string, path: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FsError, `expected an FsError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    assert.ok(err.message.includes(path), `message should name '${path}': ${err.message}`)
    return true
  })
}

describe('bad paths', () => {
  test('empty paths and NUL bytes', () => withStore(async (store) => {
    const fs = await populated(store)
    await unchanged(store, async () => {
      await rejectsWith(fs.stat(''), 'ENOENT', '')
      await rejectsWith(fs.writeFile('', 'x'), 'ENOENT', '')
      await rejectsWith(fs.mkdir(''), 'ENOENT', '')
      for (const p of ['/a\0b', '/dir/\0', '\0']) {
        await rejectsWith(fs.stat(p), 'EINVAL', p)
        await rejectsWith(fs.writeFile(p, 'x'), 'EINVAL', p)
        await rejectsWith(fs.mkdir(p), 'EINVAL', p)
        await rejectsWith(fs.unlink(p), 'EINVAL', p)
        await rejectsWith(fs.rename('/upper', p), 'EINVAL', p)
      }
      await rejectsWith(fs.symlink('bad\0target', '/l2'), 'EINVAL', '/l2')
      await rejectsWith(fs.symlink('', '/l2'), 'EINVAL', '/l2')
    })
  }))

  test('names over 255 bytes and paths over PATH_MAX', () => withStore(async (store) => {
    const fs = await populated(store)
    const long = 'n'.repeat(256)
    const multibyte = 'é'.repeat(128) // 256 bytes in UTF-8, 128 characters
    const huge = '/' + Array.from({ length: 40 }, () => 'd'.repeat(120)).join('/')
    await unchanged(store, async () => {
      for (const p of [`/${long}`, `/dir/${multibyte}`, `/${long}/x`]) {
        await rejectsWith(fs.writeFile(p, 'x'), 'ENAMETOOLONG', p)
        await rejectsWith(fs.mkdir(p), 'ENAMETOOLONG', p)
        await rejectsWith(fs.stat(p), 'ENAMETOOLONG', p)
        await rejectsWith(fs.symlink('/file', p), 'ENAMETOOLONG', p)
        await rejectsWith(fs.rename('/upper', p), 'ENAMETOOLONG', p)
      }
      await rejectsWith(fs.stat(huge), 'ENAMETOOLONG', huge)
      await rejectsWith(fs.symlink('t'.repeat(4096), '/l2'), 'ENAMETOOLONG', '/l2')
    })
    await fs.writeFile(`/${'n'.repeat(255)}`, 'the longest name fits')
    await fs.writeFile(`/${'é'.repeat(127)}`, '254 bytes fit')
  }))

  test('missing parents and non-dir components', () => withStore(async (store) => {
    const fs = await populated(store)
    await unchanged(store, async () => {
      await rejectsWith(fs.writeFile('/missing/f', 'x'), 'ENOENT', '/missing/f')
      await rejectsWith(fs.mkdir('/missing/d'), 'ENOENT', '/missing/d')
      await rejectsWith(fs.rename('/upper', '/missing/u'), 'ENOENT', '/missing/u')
      await rejectsWith(fs.link('/upper', '/missing/u'), 'ENOENT', '/missing/u')
      await rejectsWith(fs.unlink('/missing'), 'ENOENT', '/missing')
      await rejectsWith(fs.rmdir('/missing'), 'ENOENT', '/missing')
      await rejectsWith(fs.readdir('/missing'), 'ENOENT', '/missing')
      await rejectsWith(fs.chmod('/missing', 0o600), 'ENOENT', '/missing')
      for (const p of ['/file/x', '/upper/x', '/dir/lower/x', '/link/x']) {
        await rejectsWith(fs.writeFile(p, 'x'), 'ENOTDIR', p)
        await rejectsWith(fs.mkdir(p), 'ENOTDIR', p)
        await rejectsWith(fs.stat(p), 'ENOTDIR', p)
      }
      await rejectsWith(fs.readdir('/file'), 'ENOTDIR', '/file')
      await rejectsWith(fs.rmdir('/upper'), 'ENOTDIR', '/upper')
      await rejectsWith(fs.unlink('/dir'), 'EISDIR', '/dir')
      await rejectsWith(fs.rmdir('/'), 'EBUSY', '/')
      await rejectsWith(fs.rmdir('/dir'), 'ENOTEMPTY', '/dir')
      await rejectsWith(fs.mkdir('/dir'), 'EEXIST', '/dir')
      await rejectsWith(fs.mkdir('/dir/lower'), 'EEXIST', '/dir/lower')
      await rejectsWith(fs.symlink('x', '/upper'), 'EEXIST', '/upper')
      await rejectsWith(fs.link('/dir', '/dirlink'), 'EPERM', '/dir')
      await rejectsWith(fs.readlink('/file'), 'EINVAL', '/file')
    })
  }))
})

describe('bad arguments', () => {
  test('invalid open flags and handle use', () => withStore(async (store) => {
    const fs = await populated(store)
    await unchanged(store, async () => {
      for (const flags of ['bogus', 'rw', '', 'w++']) await rejectsWith(fs.open('/upper', flags), 'EINVAL', '/upper')
      await rejectsWith(fs.open('/missing', 'bogus'), 'EINVAL', '/missing')
      await rejectsWith(fs.open('/dir', 'r+'), 'EISDIR', '/dir')
      await rejectsWith(fs.open('/upper', 'wx'), 'EEXIST', '/upper')
      await rejectsWith(fs.open('/missing', 'r'), 'ENOENT', '/missing')
      const h = await fs.open('/upper', 'r')
      await rejectsWith(h.write(Buffer.from('x')), 'EBADF', '/upper')
      await rejectsWith(h.truncate(0), 'EBADF', '/upper')
      await rejectsWith(h.read(Buffer.alloc(4), 2, 4, 0), 'EINVAL', '/upper')
      await h.close()
      await rejectsWith(h.read(Buffer.alloc(4)), 'EBADF', '/upper')
      await rejectsWith(fs.truncate('/upper', -1), 'EINVAL', '/upper')
    })
  }))

  test('invalid rename flags, times, modes and xattr names', () => withStore(async (store) => {
    const fs = await populated(store)
    await unchanged(store, async () => {
      await rejectsWith(fs.rename('/upper', '/other', 4), 'EINVAL', '/upper')
      await rejectsWith(fs.rename('/upper', '/file', 3), 'EINVAL', '/upper')
      await rejectsWith(fs.utimes('/upper', Number.NaN, 0), 'EINVAL', '/upper')
      await rejectsWith(fs.utimes('/upper', 0, Number.POSITIVE_INFINITY), 'EINVAL', '/upper')
      await rejectsWith(fs.mknod('/node', 0o040755), 'EINVAL', '/node')
      await rejectsWith(fs.setxattr('/upper', 'nonamespace', 'v'), 'ENOTSUP', '/upper')
      await rejectsWith(fs.setxattr('/upper', 'user.', 'v'), 'ENOTSUP', '/upper')
      await rejectsWith(fs.setxattr('/upper', '', 'v'), 'EINVAL', '/upper')
      await rejectsWith(fs.setxattr('/upper', `user.${'x'.repeat(251)}`, 'v'), 'ERANGE', '/upper')
      await rejectsWith(fs.setxattr('/upper', 'user.big', Buffer.alloc(65537)), 'ERANGE', '/upper')
      await rejectsWith(fs.setxattr('/upper', 'trusted.overlay.opaque', 'y'), 'ENOTSUP', '/upper')
      await rejectsWith(fs.setxattr('/upper', 'user.x', 'v', 2), 'ENODATA', '/upper')
      await rejectsWith(fs.removexattr('/upper', 'user.x'), 'ENODATA', '/upper')
      await rejectsWith(fs.getxattr('/upper', 'user.x'), 'ENODATA', '/upper')
    })
  }))

  test('invalid creds and redirect options', () => withStore(async (store) => {
    await populated(store)
    await unchanged(store, async () => {
      const bad = [{ uid: -1, gid: 0 }, { uid: 1.5, gid: 0 }, { uid: 0, gid: 2 ** 32 }, { uid: 0 }, { uid: 0, gid: 0, groups: [Number.NaN] }, { uid: 0, gid: 0, groups: 'wheel' }, { uid: '0', gid: 0 }]
      for (const creds of bad) throwsWith(() => store.fs('work', { creds: creds as never }), 'EINVAL', 'work')
      throwsWith(() => store.fs('work', { redirectDir: 'sometimes' as never }), 'EINVAL', 'work')
      throwsWith(() => store.fs('work', { redirectMax: 0 }), 'EINVAL', 'work')
      throwsWith(() => store.fs('work', { redirectMax: 1.5 }), 'EINVAL', 'work')
    })
  }))

  test('invalid labels', () => withStore(async (store) => {
    await populated(store)
    const badLabels = [{ '': 'v' }, { k: 5 }, { k: null }, ['a'], 'k=v', null]
    await unchanged(store, async () => {
      for (const labels of badLabels) {
        await rejectsWith(store.prepare('new', 'base', { labels: labels as never }), 'EINVAL', 'new')
        await rejectsWith(store.view('new', 'base', { labels: labels as never }), 'EINVAL', 'new')
        await rejectsWith(store.update('work', { labels: labels as never }), 'EINVAL', 'work')
        await rejectsWith(store.commit('done', 'work', { labels: labels as never }), 'EINVAL', 'done')
      }
      await rejectsWith(store.update('work', undefined as never), 'EINVAL', 'work')
    })
    assert.equal((await store.stat('work')).kind, 'active')
    assert.deepEqual((await store.stat('work')).labels, { k: 'v' })
  }))

  test('missing and malformed snapshot keys', () => withStore(async (store) => {
    await populated(store)
    await unchanged(store, async () => {
      await rejectsWith(store.stat('nope'), 'ENOENT', 'nope')
      await rejectsWith(store.remove('nope'), 'ENOENT', 'nope')
      await rejectsWith(store.commit('done', 'nope'), 'ENOENT', 'nope')
      await rejectsWith(store.usage('nope'), 'ENOENT', 'nope')
      await rejectsWith(store.update('nope', { labels: {} }), 'ENOENT', 'nope')
      await rejectsWith(store.view('v', 'nope'), 'ENOENT', 'nope')
      await rejectsWith(store.fs('nope').readdir('/'), 'ENOENT', 'nope')
      await rejectsWith(store.fs('nope').writeFile('/f', 'x'), 'ENOENT', 'nope')
      for (const key of ['', 'a\0b', 'k'.repeat(1025)]) {
        await rejectsWith(store.prepare(key), 'EINVAL', key)
        await rejectsWith(store.view(key, 'base'), 'EINVAL', key)
        await rejectsWith(store.stat(key), 'EINVAL', key)
        await rejectsWith(store.commit(key, 'work'), 'EINVAL', key)
      }
      await rejectsWith(store.prepare(42 as never), 'EINVAL', '42')
    })
  }))
})
