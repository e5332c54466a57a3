import { describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { appendFile, chmod, lchown, link, lstat, mkdir, readdir, rename, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getAttribute, listAttributes, setAttribute } from 'fs-xattr'
import type { Store } from '../engine/index.js'
import { exportOverlayDirs, importOverlayDir } from '../engine/transfer/overlaydir.js'
import { dumpDb, patternBytes, rejectsWith, withStore, withTempDir } from './helpers.js'
import { diffTrees, readTree } from './treecompare.js'

/**
 * Layers between the store and dirs in the kernel overlayfs's format, checked against the
 * kernel itself: an upper dir made by real operations under a kernel mount is imported and
 * must show what the mount showed; exported layer dirs are mounted and must show what the
 * snapshot shows.
 */

const run = promisify(execFile)
const isRoot = process.getuid?.() === 0

async function mknod(path: string, ...spec: string[]): Promise<void> {
  await run('mknod', ['--', path, ...spec])
}

/** Why kernel overlay mounts cannot be tested here, or undefined when they can. */
let overlayProbe: Promise<string | undefined> | undefined
function overlayMissing(): Promise<string | undefined> {
  overlayProbe ??= (async () => {
    if (!isRoot) return 'needs root: kernel overlay mounts, whiteout devices, trusted.* xattrs'
    return withTempDir('strata-ovl-probe-', async (tmp) => {
      for (const d of ['a', 'b', 'm']) await mkdir(join(tmp, d))
      try {
        await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${tmp}/a:${tmp}/b`, `${tmp}/m`])
      } catch (err) {
        return `kernel overlayfs mount failed: ${(err as Error).message.trim()}`
      }
      await run('umount', [`${tmp}/m`])
      return undefined
    })
  })()
  return overlayProbe
}

/** Skips the test (with the reason printed) when kernel overlay mounts are not available. */
async function needOverlay(t: TestContext): Promise<boolean> {
  const why = await overlayMissing()
  if (why) t.skip(why)
  return why === undefined
}

/** Runs `fn` with an overlay mounted on `mnt`, and always unmounts it. */
async function withMount<T>(options: string, mnt: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(mnt, { recursive: true })
  await run('mount', ['-t', 'overlay', 'overlay', '-o', options, mnt])
  try {
    return await fn()
  } finally {
    await run('umount', [mnt])
  }
}

async function assertSameTree(expected: Awaited<ReturnType<typeof readTree>>, actual: Awaited<ReturnType<typeof readTree>>): Promise<void> {
  assert.deepEqual(diffTrees(expected, actual), [])
  assert.deepEqual(actual, expected)
}

async function put(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, data, { mode })
  await chmod(path, mode)
}

// ---- the lower dirs of test 1 ----

/** The bottom layer: a plain tree (snapshotted with snapshotDir). */
async function makeBottom(d: string): Promise<void> {
  await put(join(d, 'a/file1'), 'one\n')
  await put(join(d, 'a/sub/deep.txt'), 'deep\n')
  await symlink('../file1', join(d, 'a/sub/rel'))
  await put(join(d, 'hl/x'), 'linked three\n')
  await link(join(d, 'hl/x'), join(d, 'hl/y'))
  await link(join(d, 'hl/x'), join(d, 'hl/z'))
  await put(join(d, 'pair1'), 'pair\n')
  await link(join(d, 'pair1'), join(d, 'pair2'))
  await put(join(d, 'keep.txt'), 'keep\n', 0o640)
  await lchown(join(d, 'keep.txt'), 1000, 1000)
  await put(join(d, 'dirdel/inner/f'), 'gone soon\n')
  await put(join(d, 'ren/src/f1'), 'renamed with its dir\n')
  await put(join(d, 'ren2/g'), 'moved elsewhere\n')
  await put(join(d, 'xattr.txt'), 'with xattr\n')
  await setAttribute(join(d, 'xattr.txt'), 'user.color', 'blue')
  await put(join(d, 'hidden-by-l1'), 'hidden by the middle layer\n')
  await put(join(d, 'opq-l1/old'), 'hidden by an opaque dir\n')
  await put(join(d, 'sparse'), '')
  await appendFile(join(d, 'sparse'), 'x')
  await truncate(join(d, 'sparse'), 3 * 1024 * 1024)
  await mknod(join(d, 'fifo'), 'p')
}

/** The middle layer, in the kernel's format (imported with importOverlayDir). */
async function makeMiddle(d: string): Promise<void> {
  await put(join(d, 'a/file2'), 'two\n')
  await put(join(d, 'b/file'), 'b\n')
  await mknod(join(d, 'hidden-by-l1'), 'c', '0', '0')
  await put(join(d, 'opq-l1/new'), 'above the opaque mark\n')
  await setAttribute(join(d, 'opq-l1'), 'trusted.overlay.opaque', 'y')
  await put(join(d, 'ren2/h'), 'merged into ren2\n')
  await put(join(d, 'l1link1'), 'linked in the middle\n')
  await link(join(d, 'l1link1'), join(d, 'l1link2'))
  await put(join(d, 'big-middle'), patternBytes(2 * 1024 * 1024 + 100, 7))
}

/** Changes made through the kernel mount: each leaves its mark in the upper dir. */
async function changeThroughMount(m: string): Promise<void> {
  await chmod(join(m, 'keep.txt'), 0o600)
  await lchown(join(m, 'xattr.txt'), 3000, 3000)
  await rm(join(m, 'a/sub'), { recursive: true })
  await mkdir(join(m, 'a/sub'))
  await writeFile(join(m, 'a/sub/new.txt'), 'opaque now\n')
  await rm(join(m, 'dirdel'), { recursive: true })
  await unlink(join(m, 'pair2'))
  await rename(join(m, 'ren/src'), join(m, 'ren/dst'))
  await rename(join(m, 'ren2'), join(m, 'a/ren2moved'))
  await appendFile(join(m, 'a/file1'), 'more\n')
  await writeFile(join(m, 'hl/x'), 'changed through one name\n')
  await writeFile(join(m, 'new.txt'), 'new\n')
  await link(join(m, 'new.txt'), join(m, 'newlink'))
  await symlink('new.txt', join(m, 'newsym'))
  await setAttribute(join(m, 'a/file2'), 'user.tag', 'v')
  await setAttribute(join(m, 'b'), 'user.dir', '1')
  await rename(join(m, 'b/file'), join(m, 'moved-file'))
  await mkdir(join(m, 'fresh/deeper'), { recursive: true })
  await writeFile(join(m, 'fresh/deeper/f'), 'fresh\n')
  await chmod(join(m, 'fresh'), 0o700)
  await link(join(m, 'l1link1'), join(m, 'b/l1link3'))
  const big = Buffer.concat([patternBytes(1024 * 1024, 1), Buffer.alloc(2 * 1024 * 1024), patternBytes(700 * 1024, 2)])
  await writeFile(join(m, 'bigupper'), big)
  await truncate(join(m, 'sparse'), 5 * 1024 * 1024)
  await appendFile(join(m, 'big-middle'), 'tail')
}

async function writtenUpper(u: string): Promise<void> {
  // the kernel wrote the marks the import translates: check they are there
  assert.ok((await lstat(join(u, 'dirdel'))).isCharacterDevice(), 'a removed dir leaves a whiteout')
  assert.equal((await getAttribute(join(u, 'a/sub'), 'trusted.overlay.opaque')).toString(), 'y')
  assert.equal((await getAttribute(join(u, 'ren/dst'), 'trusted.overlay.redirect')).toString(), 'src')
  assert.equal((await getAttribute(join(u, 'a/ren2moved'), 'trusted.overlay.redirect')).toString(), '/ren2')
}

describe('importOverlayDir', () => {
  test('an upper dir made under a kernel mount shows what the mount showed', async (t) => {
    if (!(await needOverlay(t))) return
    await withTempDir('strata-ovl-import-', (tmp) => withStore(async (store) => {
      const [l1, l2, u, w, m] = ['L1', 'L2', 'U', 'W', 'M'].map((n) => join(tmp, n))
      for (const d of [l1, l2, u, w, m]) await mkdir(d)
      await makeBottom(l2)
      await makeMiddle(l1)
      await store.snapshotDir(l2, { name: 'l2' })
      await importOverlayDir(store, l1, { name: 'l1', parent: 'l2' })
      // the store shows the two lower layers as the kernel does, before any change
      await withMount(`lowerdir=${l1}:${l2}`, m, async () => assertSameTree(await readTree(m), await readTree(store.fs('l1'))))

      const seen = await withMount(`lowerdir=${l1}:${l2},upperdir=${u},workdir=${w},redirect_dir=on`, m, async () => {
        await changeThroughMount(m)
        return readTree(m)
      })
      await writtenUpper(u)
      let reported = 0
      const info = await importOverlayDir(store, u, { name: 'upper', parent: 'l1', labels: { from: 'kernel' }, progress: (n) => { reported = n } })
      assert.equal(info.kind, 'committed')
      assert.equal(info.parent, 'l1')
      assert.deepEqual(info.labels, { from: 'kernel' })
      assert.ok(reported >= 3 * 1024 * 1024, `progress reported ${reported} bytes`)
      await assertSameTree(seen, await readTree(store.fs('upper')))
      // the layer holds the dir's records only, marks translated
      const usage = await store.usage('upper')
      assert.ok(usage.inodes < 40, `layer entries: ${usage.inodes}`)
      assert.deepEqual(await store.fs('upper').readdir('/a/sub'), ['new.txt'])
      assert.deepEqual((await store.fs('upper').readdir('/ren/dst')).sort(), ['f1'])
      assert.equal((await store.fs('upper').readdir('/ren')).includes('src'), false)
      assert.deepEqual((await store.fs('upper').listxattr('/a/ren2moved')), [])
      assert.equal((await store.fsck()).ok, true)
    }))
  })

  test('markers under user.overlay.*, xwhiteouts and escaped xattrs, checked against the kernel', async (t) => {
    if (!(await needOverlay(t))) return
    await withTempDir('strata-ovl-userxattr-', (tmp) => withStore(async (store) => {
      const [base, layer, m] = ['base', 'layer', 'M'].map((n) => join(tmp, n))
      await put(join(base, 'gone'), 'gone\n')
      await put(join(base, 'xw/deleted'), 'deleted by an xwhiteout\n')
      await put(join(base, 'xw/base'), 'stays\n')
      await put(join(base, 'opq/old'), 'hidden\n')
      await put(join(base, 'src/f'), 'found through the redirect\n')
      await put(join(base, 'tdir/basefile'), 'trusted.overlay.* means nothing here\n')
      await mkdir(layer)
      await mknod(join(layer, 'gone'), 'c', '0', '0')
      await put(join(layer, 'xw/kept'), 'kept\n')
      await put(join(layer, 'xw/deleted'), '')
      await setAttribute(join(layer, 'xw/deleted'), 'user.overlay.whiteout', '')
      await setAttribute(join(layer, 'xw'), 'user.overlay.opaque', 'x')
      await put(join(layer, 'opq/new'), 'new\n')
      await setAttribute(join(layer, 'opq'), 'user.overlay.opaque', 'y')
      await put(join(layer, 'esc'), 'escaped xattr\n')
      await setAttribute(join(layer, 'esc'), 'user.overlay.overlay.tag', 'mine')
      await setAttribute(join(layer, 'esc'), 'user.plain', 'p')
      await setAttribute(join(layer, 'esc'), 'user.overlay.origin', 'kernel bookkeeping')
      await put(join(layer, 'tdir/new'), 'new\n')
      await setAttribute(join(layer, 'tdir'), 'trusted.overlay.opaque', 'y')

      await store.snapshotDir(base, { name: 'base' })
      await importOverlayDir(store, layer, { name: 'ux', parent: 'base', userxattr: true })
      const fs = store.fs('ux')
      assert.deepEqual((await fs.readdir('/')).sort(), ['esc', 'opq', 'src', 'tdir', 'xw'])
      assert.deepEqual((await fs.readdir('/xw')).sort(), ['base', 'kept'])
      assert.deepEqual(await fs.readdir('/opq'), ['new'])
      assert.deepEqual((await fs.readdir('/tdir')).sort(), ['basefile', 'new'])
      assert.deepEqual((await fs.listxattr('/esc')).sort(), ['user.overlay.tag', 'user.plain'])
      assert.equal((await fs.getxattr('/esc', 'user.overlay.tag')).toString(), 'mine')
      assert.deepEqual(await fs.listxattr('/xw'), [])

      await withMount(`lowerdir=${layer}:${base},userxattr`, m, async () => assertSameTree(await readTree(m), await readTree(fs)))

      // and exported again with userxattr, the kernel shows the same tree
      const out = join(tmp, 'out')
      const res = await exportOverlayDirs(store, 'ux', out, { userxattr: true })
      assert.equal((await getAttribute(join(out, '1/esc'), 'user.overlay.overlay.tag')).toString(), 'mine')
      assert.equal((await getAttribute(join(out, '1/opq'), 'user.overlay.opaque')).toString(), 'y')
      await withMount(`lowerdir=${res.lowerdir},userxattr`, m, async () => assertSameTree(await readTree(m), await readTree(fs)))

      // a redirect under user.overlay.* (which a userxattr mount does not follow: redirect_dir=nofollow)
      const renamed = join(tmp, 'renamed')
      await mkdir(join(renamed, 'moved'), { recursive: true })
      await setAttribute(join(renamed, 'moved'), 'user.overlay.redirect', '/src')
      await importOverlayDir(store, renamed, { name: 'ux2', parent: 'ux', userxattr: true })
      assert.deepEqual(await store.fs('ux2').readdir('/moved'), ['f'])
      assert.equal(await store.fs('ux2').readFile('/moved/f', 'utf8'), 'found through the redirect\n')
      await exportOverlayDirs(store, 'ux2', join(tmp, 'out2'), { userxattr: true })
      assert.equal((await getAttribute(join(tmp, 'out2/2/moved'), 'user.overlay.redirect')).toString(), '/src')
      assert.deepEqual((await listAttributes(join(tmp, 'out2/2/moved'))).filter((n) => n.startsWith('trusted.')), [])
    }))
  })

  test('trusted.overlay xwhiteouts in a dir marked x', async (t) => {
    if (!isRoot) return t.skip('needs root: trusted.* xattrs')
    await withTempDir('strata-ovl-xw-', (tmp) => withStore(async (store) => {
      const [base, layer] = ['base', 'layer'].map((n) => join(tmp, n))
      await put(join(base, 'd/a'), 'a\n')
      await put(join(base, 'd/b'), 'b\n')
      await put(join(layer, 'd/a'), '')
      await setAttribute(join(layer, 'd/a'), 'trusted.overlay.whiteout', '')
      await setAttribute(join(layer, 'd'), 'trusted.overlay.opaque', 'x')
      await store.snapshotDir(base, { name: 'base' })
      await importOverlayDir(store, layer, { name: 'x', parent: 'base' })
      assert.deepEqual(await store.fs('x').readdir('/d'), ['b'])
    }))
  })

  test('bad input: a clear error naming the path, and the store unchanged', async () => {
    // trusted.overlay.* needs root; user.overlay.* (userxattr) shows the same checks without it
    const userxattr = !isRoot
    const prefix = userxattr ? 'user.overlay.' : 'trusted.overlay.'
    await withTempDir('strata-ovl-bad-', (tmp) => withStore(async (store) => {
      await put(join(tmp, 'base/f'), 'f\n')
      await store.snapshotDir(join(tmp, 'base'), { name: 'base' })
      const unchanged = async (bad: () => Promise<unknown>): Promise<void> => {
        const before = await dumpDb(store)
        await bad()
        assert.deepEqual(await dumpDb(store), before)
      }
      const missing = join(tmp, 'missing')
      await unchanged(() => rejectsWith(importOverlayDir(store, missing, { name: 'n' }), 'ENOENT', missing))
      await unchanged(() => rejectsWith(importOverlayDir(store, join(tmp, 'base/f'), { name: 'n' }), 'ENOTDIR', join(tmp, 'base/f')))
      for (const [i, bad] of ['../etc', 'a/b', '/a//b', '/', '.', '/a/../b'].entries()) {
        const dir = join(tmp, `redirect${i}`, 'd')
        await mkdir(dir, { recursive: true })
        await put(join(dir, 'file'), 'x\n')
        await setAttribute(dir, `${prefix}redirect`, bad)
        await unchanged(() => rejectsWith(importOverlayDir(store, join(tmp, `redirect${i}`), { name: 'n', parent: 'base', userxattr }), 'EINVAL', dir))
      }
      const meta = join(tmp, 'meta')
      await put(join(meta, 'ok'), 'ok\n')
      await put(join(meta, 'sub/mc'), '')
      await setAttribute(join(meta, 'sub/mc'), `${prefix}metacopy`, '')
      await unchanged(() => rejectsWith(importOverlayDir(store, meta, { name: 'n', parent: 'base', userxattr }), 'ENOTSUP', join(meta, 'sub/mc')))
      await unchanged(() => rejectsWith(importOverlayDir(store, join(tmp, 'base'), { name: 'base' }), 'EEXIST', 'base'))
      await unchanged(() => rejectsWith(importOverlayDir(store, join(tmp, 'base'), { name: 'n', parent: 'nope' }), 'ENOENT', 'nope'))
      await unchanged(() => rejectsWith(exportOverlayDirs(store, 'nope', join(tmp, 'out')), 'ENOENT', 'nope'))
      await unchanged(() => rejectsWith(exportOverlayDirs(store, 'base', join(tmp, 'base')), 'EEXIST', join(tmp, 'base')))
      await assert.rejects(lstat(join(tmp, 'out')), { code: 'ENOENT' })
    }))
  })
})

// ---- export ----

/**
 * A chain of three layers made through the store's own calls: whiteouts, an opaque dir, dirs
 * renamed (redirects, relative and absolute), hard links split across layers.
 */
async function buildChain(store: Store): Promise<void> {
  await store.prepare('w0')
  const f0 = store.fs('w0')
  await f0.mkdir('/dir/sub', { recursive: true })
  await f0.writeFile('/dir/a.txt', 'a\n')
  await f0.writeFile('/dir/sub/b.txt', 'b\n')
  await f0.writeFile('/gone.txt', 'gone\n')
  await f0.mkdir('/gonedir/inner', { recursive: true })
  await f0.writeFile('/gonedir/inner/x', 'x\n')
  await f0.mkdir('/opq')
  await f0.writeFile('/opq/old', 'old\n')
  await f0.mkdir('/ren/inner', { recursive: true })
  await f0.writeFile('/ren/inner/f', 'f\n')
  await f0.writeFile('/hl1', 'linked\n')
  await f0.link('/hl1', '/hl2')
  await f0.link('/hl1', '/dir/hl3')
  await f0.mkdir('/keepdir')
  await f0.writeFile('/keepdir/f', 'kept\n')
  await f0.symlink('dir/a.txt', '/sym')
  await f0.mknod('/fifo', 0o010644)
  const h = await f0.open('/sparse', 'w')
  await h.write(Buffer.from('end'), 0, 3, 4 * 1024 * 1024)
  await h.close()
  await f0.writeFile('/xa', 'xattrs\n')
  await f0.setxattr('/xa', 'user.k', 'v')
  await f0.setxattr('/xa', 'trusted.t', 'tv')
  await f0.chown('/dir/a.txt', 1000, 1001)
  await f0.chmod('/keepdir/f', 0o4755)
  await store.commit('c0', 'w0')

  await store.prepare('w1', 'c0')
  const f1 = store.fs('w1')
  await f1.unlink('/gone.txt')
  await f1.unlink('/gonedir/inner/x')
  await f1.rmdir('/gonedir/inner')
  await f1.rmdir('/gonedir')
  await f1.unlink('/opq/old')
  await f1.rmdir('/opq')
  await f1.mkdir('/opq')
  await f1.writeFile('/opq/new', 'new\n')
  await f1.rename('/ren', '/ren2')
  await f1.rename('/dir/sub', '/moved')
  await f1.appendFile('/hl1', 'written through hl1\n')
  await f1.link('/dir/a.txt', '/keepdir/alink')
  await f1.writeFile('/big', patternBytes(3 * 1024 * 1024 + 5, 3))
  await store.commit('c1', 'w1')

  await store.prepare('w2', 'c1')
  const f2 = store.fs('w2')
  await f2.appendFile('/moved/b.txt', 'changed in the top layer\n')
  await f2.unlink('/keepdir/f')
  await f2.setxattr('/dir', 'user.d', 'dir xattr')
  await f2.mkdir('/top')
  await f2.writeFile('/top/t', 't\n')
  await f2.rename('/ren2/inner', '/top/inner')
  await store.commit('c2', 'w2')
}

async function mountAndCompare(store: Store, key: string, out: string, mnt: string): Promise<void> {
  const res = await exportOverlayDirs(store, key, out)
  assert.equal(res.format, 'overlay')
  assert.equal(res.path, out)
  await withMount(`lowerdir=${res.lowerdir},redirect_dir=follow`, mnt, async () => {
    await assertSameTree(await readTree(mnt, { xattrs: (n) => !n.startsWith('security.') }), await readTree(store.fs(key), { xattrs: (n) => !n.startsWith('security.') }))
  })
}

describe('exportOverlayDirs', () => {
  test('layer dirs mounted by the kernel show the snapshot: committed, view and active', async (t) => {
    if (!(await needOverlay(t))) return
    await withTempDir('strata-ovl-export-', (tmp) => withStore(async (store) => {
      await buildChain(store)
      const out = join(tmp, 'out')
      let written = 0
      const res = await exportOverlayDirs(store, 'c2', out, { progress: (n) => { written = n } })
      assert.ok(written >= 3 * 1024 * 1024, `progress reported ${written} bytes`)
      assert.equal(res.lowerdir, [2, 1, 0].map((i) => join(out, String(i))).join(':'))
      assert.deepEqual((await readdir(out)).sort(), ['0', '1', '2'])
      // the kernel's forms
      const gone = await lstat(join(out, '1/gone.txt'))
      assert.ok(gone.isCharacterDevice() && gone.rdev === 0, 'a whiteout is a char device 0/0')
      assert.ok((await lstat(join(out, '1/gonedir'))).isCharacterDevice())
      assert.equal((await getAttribute(join(out, '1/opq'), 'trusted.overlay.opaque')).toString(), 'y')
      assert.equal((await getAttribute(join(out, '1/ren2'), 'trusted.overlay.redirect')).toString(), 'ren')
      assert.equal((await getAttribute(join(out, '1/moved'), 'trusted.overlay.redirect')).toString(), '/dir/sub')
      assert.equal((await getAttribute(join(out, '2/top/inner'), 'trusted.overlay.redirect')).toString(), '/ren2/inner')
      assert.equal((await listAttributes(join(out, '0/dir'))).filter((n) => n.startsWith('trusted.overlay.')).length, 0)
      // hl1 went up a layer through one name: all its names are in the top dir, as one file
      const tops = await Promise.all(['hl1', 'hl2', 'dir/hl3'].map((p) => lstat(join(out, '2', p))))
      assert.ok(tops.every((s) => s.ino === tops[0].ino && s.nlink === 3))
      const mnt = join(tmp, 'mnt')
      await withMount(`lowerdir=${res.lowerdir}`, mnt, async () => {
        await assertSameTree(await readTree(store.fs('c2')), await readTree(mnt))
        assert.deepEqual(await readTree(mnt, { xattrs: (n) => n === 'trusted.t' }).then((tr) => tr.entries['/xa'].xattrs), { 'trusted.t': Buffer.from('tv').toString('hex') })
      })

      // a view shows its parent's stack; an active snapshot adds its own layer on top
      await store.view('v', 'c1')
      await mountAndCompare(store, 'v', join(tmp, 'out-view'), mnt)
      await store.prepare('w3', 'c2')
      const f3 = store.fs('w3')
      await f3.appendFile('/hl2', 'and through hl2 in the active layer\n')
      await f3.unlink('/dir/a.txt')
      await f3.rename('/moved', '/dir/again')
      await f3.writeFile('/active', 'active\n')
      await mountAndCompare(store, 'w3', join(tmp, 'out-active'), mnt)
      assert.deepEqual((await readdir(join(tmp, 'out-active'))).sort(), ['0', '1', '2', '3'])
      // /keepdir/alink lost its other name in the active layer, which holds its record now: the
      // name went up into the top dir, under a plain dir made there for it
      assert.deepEqual(await readdir(join(tmp, 'out-active/3/keepdir')), ['alink'])
      assert.deepEqual((await listAttributes(join(tmp, 'out-active/3/keepdir'))).filter((n) => n.startsWith('trusted.overlay.')), [])
    }))
  })

  test('exported layers imported again give the same tree', async (t) => {
    if (!isRoot) return t.skip('needs root: whiteout devices and trusted.* xattrs')
    await withTempDir('strata-ovl-again-', (tmp) => withStore(async (store) => {
      await buildChain(store)
      const out = join(tmp, 'out')
      await exportOverlayDirs(store, 'c2', out)
      let parent = ''
      for (const i of [0, 1, 2]) {
        await importOverlayDir(store, join(out, String(i)), { name: `again${i}`, parent })
        parent = `again${i}`
      }
      // only the whole stack is the same: the top dir holds the names of links lifted from below
      await assertSameTree(await readTree(store.fs('c2')), await readTree(store.fs('again2')))
    }))
  })
})
