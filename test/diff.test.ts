import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { DiffEntry, SnapshotFs, Store } from '../engine/index.js'
import { rejectsWith, withStore } from './helpers.js'

/** Entries as 'A /path' lines: easy to read in a failed assertion. */
const lines = (d: DiffEntry[]): string[] => d.map((e) => `${{ added: 'A', modified: 'M', deleted: 'D' }[e.kind]} ${e.path}`)

const T0 = 1_700_000_000_000_000_000n

/** Pins a path's times, so that only the changes a test makes show up as mtime changes. */
async function pin(fs: SnapshotFs, ...paths: string[]): Promise<void> {
  for (const p of paths) await fs.lutimes(p, T0, T0)
}

/**
 * base:
 *   /a  /same  /l -> a  /d/x  /d/y  /e/f/g  /r/inner  /x/h1 == /y/h2 (hard links)  /t (file)  /u/ (dir)
 */
async function makeBase(store: Store): Promise<void> {
  await store.prepare('build')
  const fs = store.fs('build')
  await fs.writeFile('/a', 'alpha')
  await fs.writeFile('/same', 'same content')
  await fs.symlink('a', '/l')
  for (const d of ['/d', '/e', '/e/f', '/r', '/x', '/y', '/u']) await fs.mkdir(d)
  await fs.writeFile('/d/x', 'x')
  await fs.writeFile('/d/y', 'y')
  await fs.writeFile('/e/f/g', 'g')
  await fs.writeFile('/r/inner', 'inner')
  await fs.writeFile('/x/h1', 'linked')
  await fs.link('/x/h1', '/y/h2')
  await fs.writeFile('/t', 'file that becomes a dir')
  await fs.writeFile('/u/child', 'in a dir that becomes a file')
  await pin(fs, '/a', '/same', '/l', '/d/x', '/d/y', '/e/f/g', '/r/inner', '/x/h1', '/t', '/u/child', '/e/f', '/d', '/e', '/r', '/x', '/y', '/u', '/')
  await store.commit('base', 'build')
}

describe('diff', () => {
  test('identical trees give no entries', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      assert.deepEqual(await store.diff('base', 'base'), [])
      assert.deepEqual(await store.diff('', ''), [])
      // a child that changed nothing, as an active snapshot, committed, and as a view
      await store.prepare('noop', 'base')
      assert.deepEqual(await store.diff('base', 'noop'), [])
      await store.commit('noop-c', 'noop')
      assert.deepEqual(await store.diff('base', 'noop-c'), [])
      await store.view('v', 'base')
      assert.deepEqual(await store.diff('v', 'base'), [])
    })
  })

  test('against the empty tree every top-level name is added or deleted', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      const top = ['/a', '/d', '/e', '/l', '/r', '/same', '/t', '/u', '/x', '/y']
      assert.deepEqual(lines(await store.diff('', 'base')), top.map((p) => `A ${p}`))
      assert.deepEqual(lines(await store.diff('base', '')), top.map((p) => `D ${p}`))
    })
  })

  test('adds, modifications, whiteouts, renames and type changes', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      await store.prepare('work', 'base')
      const fs = store.fs('work')
      await fs.writeFile('/a', 'ALPHA')                  // content, same size
      await pin(fs, '/a')
      await fs.unlink('/d/y')                            // whiteout
      await fs.chmod('/d/x', 0o600)                      // mode only
      await pin(fs, '/d/x', '/d')
      await fs.unlink('/e/f/g')
      await fs.rmdir('/e/f')
      await fs.rmdir('/e')                               // a deleted dir is one entry
      await fs.mkdir('/n')
      await fs.mkdir('/n/deep')
      await fs.writeFile('/n/deep/file', 'new')          // an added dir is one entry
      await fs.rename('/r', '/r2')                       // dir rename through a redirect
      await fs.unlink('/l')
      await fs.symlink('b', '/l')                        // new target
      await pin(fs, '/l')
      await fs.unlink('/t')
      await fs.mkdir('/t')                               // file -> dir
      await fs.unlink('/u/child')
      await fs.rmdir('/u')
      await fs.writeFile('/u', 'now a file')             // dir -> file
      await fs.writeFile('/same', 'same content')        // rewritten with the same bytes
      await pin(fs, '/same', '/')
      const expected = ['M /a', 'D /d/y', 'M /d/x', 'D /e', 'M /l', 'A /n', 'D /r', 'A /r2', 'M /t', 'M /u'].sort((p, q) => (p.slice(2) < q.slice(2) ? -1 : 1))
      assert.deepEqual(lines(await store.diff('base', 'work')), expected, 'active snapshot against its parent')
      await store.commit('next', 'work')
      assert.deepEqual(lines(await store.diff('base', 'next')), expected, 'committed snapshots')
      const reversed = expected.map((l) => (l[0] === 'A' ? `D${l.slice(1)}` : l[0] === 'D' ? `A${l.slice(1)}` : l))
      assert.deepEqual(lines(await store.diff('next', 'base')), reversed, 'the other way round')
    })
  })

  test('mtime, owner and xattr changes alone count as modifications; atime does not', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      await store.prepare('work', 'base')
      const fs = store.fs('work')
      await fs.lutimes('/a', T0 + 5n, T0)        // atime only
      await fs.lutimes('/same', T0, T0 + 1n)     // mtime by one nanosecond
      await fs.chown('/d/x', 7, 8)
      await fs.setxattr('/r/inner', 'user.k', 'v')
      await pin(fs, '/d/x', '/r/inner')
      assert.deepEqual(lines(await store.diff('base', 'work')), ['M /d/x', 'M /r/inner', 'M /same'])
    })
  })

  test('a hard link changed through one name shows under every name, also in untouched dirs', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      await store.prepare('work', 'base')
      const fs = store.fs('work')
      // /x is not touched: its index node stays shared with base, yet /x/h1 shows the new mode
      await fs.chmod('/y/h2', 0o640)
      await pin(fs, '/y/h2')
      const expected = ['M /x/h1', 'M /y/h2']
      assert.deepEqual(lines(await store.diff('base', 'work')), expected)
      await store.commit('next', 'work')
      assert.deepEqual(lines(await store.diff('base', 'next')), expected)
      assert.deepEqual(lines(await store.diff('next', 'base')), expected)
    })
  })

  test('content is compared by data, not by record: equal bytes are equal, equal sizes are not', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      await store.prepare('work', 'base')
      const fs = store.fs('work')
      const big = Buffer.alloc(300 * 1024, 7)
      await fs.writeFile('/big', big)
      await pin(fs, '/big', '/')
      await store.commit('one', 'work')
      await store.prepare('work2', 'one')
      const fs2 = store.fs('work2')
      await fs2.writeFile('/big', big)                 // the same chunks, a new record
      await fs2.writeFile('/a', 'alphA')
      await pin(fs2, '/big', '/a')
      assert.deepEqual(lines(await store.diff('one', 'work2')), ['M /a'])
      const h = await fs2.open('/big', 'r+')
      await h.write(Buffer.from([8]), 0, 1, 200 * 1024)      // one byte, the size stays
      await h.close()
      await pin(fs2, '/big')
      assert.deepEqual(lines(await store.diff('one', 'work2')), ['M /a', 'M /big'])
    })
  })

  test('a missing snapshot is ENOENT naming it', async () => {
    await withStore(async (store) => {
      await makeBase(store)
      await rejectsWith(store.diff('base', 'nope'), 'ENOENT', 'nope')
      await rejectsWith(store.diff('nope', 'nope'), 'ENOENT', 'nope')
    })
  })
})
