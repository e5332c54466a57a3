import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { SnapshotFs, Store } from '../engine/index.js'
import { rejectsWith, withStore } from './helpers.js'

/**
 * Path walks keep the directory nodes they find (engine/overlay/dcache.ts). Two overlays open on
 * one snapshot (the same key with different redirect options) each keep their own nodes: a
 * change through one must not leave the other walking a stale node.
 */

/** Snapshot 'base' with /d/f and /d/sub/g in its lower layer, an active 'a' on it, and two views of 'a'. */
async function twoViews(store: Store): Promise<{ one: SnapshotFs; two: SnapshotFs }> {
  await store.prepare('b', undefined)
  const b = store.fs('b')
  await b.mkdir('/d/sub', { recursive: true })
  await b.chmod('/d', 0o755)
  await b.writeFile('/d/f', 'lower f')
  await b.writeFile('/d/sub/g', 'lower g')
  await store.commit('base', 'b')
  await store.prepare('a', 'base')
  return { one: store.fs('a'), two: store.fs('a', { redirectDir: 'follow' }) }
}

describe('cached directory nodes', () => {
  test('a dir copied up through one overlay is not copied up again through another', () => withStore(async (store) => {
    const { one, two } = await twoViews(store)
    assert.equal(await two.readFile('/d/f', 'utf8'), 'lower f')
    await one.chmod('/d', 0o700)
    // two's walk to /d must see the copy: copying it up again would put the lower mode back
    await two.writeFile('/d/new', 'n')
    assert.equal((await one.stat('/d')).mode & 0o777, 0o700)
    assert.equal((await two.stat('/d')).mode & 0o777, 0o700)
    assert.deepEqual((await one.readdir('/d')).sort(), ['f', 'new', 'sub'])
  }))

  test('a renamed dir is not found under its old name by another overlay', () => withStore(async (store) => {
    const { one, two } = await twoViews(store)
    assert.equal(await two.readFile('/d/sub/g', 'utf8'), 'lower g')
    await one.rename('/d', '/e')
    await rejectsWith(two.readFile('/d/sub/g'), 'ENOENT', '/d/sub/g')
    assert.equal(await two.readFile('/e/sub/g', 'utf8'), 'lower g')
    // and through the overlay that renamed it
    await rejectsWith(one.stat('/d/sub'), 'ENOENT', '/d/sub')
  }))

  test('a dir removed and made again is the new dir, empty and opaque', () => withStore(async (store) => {
    const { one, two } = await twoViews(store)
    assert.equal(await two.readFile('/d/sub/g', 'utf8'), 'lower g')
    await one.unlink('/d/sub/g')
    await one.rmdir('/d/sub')
    await one.mkdir('/d/sub')
    assert.deepEqual(await two.readdir('/d/sub'), [])
    await rejectsWith(two.readFile('/d/sub/g'), 'ENOENT', '/d/sub/g')
    await two.writeFile('/d/sub/h', 'h')
    assert.deepEqual(await one.readdir('/d/sub'), ['h'])
  }))

  test('a dir swapped with a file by RENAME_EXCHANGE is seen as a file at once', () => withStore(async (store) => {
    const { one, two } = await twoViews(store)
    await one.writeFile('/file', 'x')
    assert.ok((await two.stat('/d/sub')).isDirectory())
    await one.rename('/file', '/d/sub', 2)
    assert.ok((await two.stat('/d/sub')).isFile())
    await rejectsWith(two.stat('/d/sub/g'), 'ENOTDIR', '/d/sub/g')
    assert.equal(await two.readFile('/file/g', 'utf8'), 'lower g')
  }))

  test('what a commit made is walked afresh in the child', () => withStore(async (store) => {
    const { one } = await twoViews(store)
    await one.mkdir('/d/made')
    await one.writeFile('/d/made/x', 'x')
    await store.commit('top', 'a')
    await store.prepare('c', 'top')
    const child = store.fs('c')
    assert.equal(await child.readFile('/d/made/x', 'utf8'), 'x')
    await child.rename('/d/made', '/d/moved')
    assert.deepEqual((await child.readdir('/d')).sort(), ['f', 'moved', 'sub'])
    assert.equal(await child.readFile('/d/moved/x', 'utf8'), 'x')
  }))
})
