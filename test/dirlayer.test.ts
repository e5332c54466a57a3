import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile, symlink, link, readdir, lstat, readFile, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { getAttribute, setAttribute } from 'fs-xattr'
import { openDirStack } from '../engine/index.js'
import { DirLayer } from '../engine/layerdir/layer.js'
import { allocDirLayerIno } from '../engine/layerdir/inos.js'
import type { LowerNode, LowerTree } from '../engine/overlay/node.js'
import { redirectConfig } from '../engine/overlay/redirect.js'
import { stackLayers } from '../engine/overlay/stack.js'
import { EmptyTree } from '../engine/store/mergeindex.js'
import { rejectsWith, withStore, withTempDir } from './helpers.js'
import { diffTrees, readTree } from './treecompare.js'

/**
 * Directory layers in the kernel's on-disk format: every form the kernel reads, a writable
 * directory upper that the kernel mounts with the same tree, and directory layers over a store
 * snapshot. The kernel's own mount is the reference wherever it can be made.
 */

const kernelReason = ((): string | undefined => {
  if (process.getuid?.() !== 0) return 'needs root (device whiteouts, trusted.* xattrs, mounts)'
  try {
    if (!execFileSync('cat', ['/proc/filesystems']).toString().includes('overlay')) return 'kernel overlayfs is not available'
  } catch {
    return 'cannot read /proc/filesystems'
  }
  return undefined
})()

const whiteout = (path: string): void => void execFileSync('mknod', [path, 'c', '0', '0'])
const xattr = (path: string, name: string, value: string): Promise<void> => setAttribute(path, name, Buffer.from(value))

async function withKernelMount<T>(opts: string, mnt: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(mnt, { recursive: true })
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', opts, mnt])
  try {
    return await fn()
  } finally {
    execFileSync('umount', [mnt])
  }
}

/** Three lower layers holding every on-disk form the kernel reads. */
async function makeLowers(root: string, prefix = 'trusted.overlay.'): Promise<string[]> {
  const [top, mid, bot] = ['top', 'mid', 'bot'].map((n) => join(root, n))
  for (const d of [top, mid, bot]) await mkdir(d)
  // bottom: the plain tree
  await mkdir(join(bot, 'a/deep'), { recursive: true })
  await writeFile(join(bot, 'a/deep/f'), 'deep file')
  await writeFile(join(bot, 'a/gone'), 'whited out by a device')
  await writeFile(join(bot, 'a/xgone'), 'whited out by an xattr')
  await mkdir(join(bot, 'hidden/sub'), { recursive: true })
  await writeFile(join(bot, 'hidden/old'), 'hidden by an opaque dir')
  await mkdir(join(bot, 'merged'))
  await writeFile(join(bot, 'merged/kept'), 'kept under opaque=x')
  await mkdir(join(bot, 'moved/inner'), { recursive: true })
  await writeFile(join(bot, 'moved/inner/data'), 'reached through an absolute redirect')
  await mkdir(join(bot, 'rel'))
  await writeFile(join(bot, 'rel/r'), 'reached through a relative redirect')
  await writeFile(join(bot, 'both'), 'a file here, a dir above')
  await writeFile(join(bot, 'big'), Buffer.alloc(3 << 20, 7))
  await writeFile(join(bot, 'h1'), 'hard linked')
  await link(join(bot, 'h1'), join(bot, 'h2'))
  await symlink('a/deep/f', join(bot, 'sym'))
  await xattr(join(bot, 'a/deep/f'), 'user.color', 'blue')
  // middle: whiteouts of both forms, opaque y and x, redirects, a dir over a file
  await mkdir(join(mid, 'a'))
  whiteout(join(mid, 'a/gone'))
  await writeFile(join(mid, 'a/xgone'), '')
  await xattr(join(mid, 'a/xgone'), `${prefix}whiteout`, '')
  await xattr(join(mid, 'a'), `${prefix}opaque`, 'x')
  await mkdir(join(mid, 'hidden'))
  await xattr(join(mid, 'hidden'), `${prefix}opaque`, 'y')
  await writeFile(join(mid, 'hidden/new'), 'the only name left')
  await mkdir(join(mid, 'merged'))
  await xattr(join(mid, 'merged'), `${prefix}opaque`, 'x')
  await writeFile(join(mid, 'merged/added'), 'added beside')
  await mkdir(join(mid, 'renamed'))
  await xattr(join(mid, 'renamed'), `${prefix}redirect`, '/moved')
  whiteout(join(mid, 'moved'))
  await mkdir(join(mid, 'rel2'))
  await xattr(join(mid, 'rel2'), `${prefix}redirect`, 'rel')
  whiteout(join(mid, 'rel'))
  await mkdir(join(mid, 'both'))
  await writeFile(join(mid, 'both/inside'), 'dir over a file')
  // top: a file over a dir, a setgid dir
  await writeFile(join(top, 'merged'), 'file over a dir')
  await mkdir(join(top, 'sg'), { mode: 0o2775 })
  execFileSync('chmod', ['2775', join(top, 'sg')])
  execFileSync('chown', ['1000:1000', join(top, 'sg')])
  return [top, mid, bot]
}

test('directory layers: every on-disk form reads as the kernel reads it', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const lowers = await makeLowers(dir)
    const fs = await openDirStack({ lowerdir: lowers, redirectDir: 'on' })
    const ours = await readTree(fs, { unreadable: true })
    assert.equal(ours.entries['/a/gone'], undefined)
    assert.equal(ours.entries['/a/xgone'], undefined)
    assert.ok(ours.entries['/renamed/inner/data'])
    assert.ok(ours.entries['/rel2/r'])
    assert.equal(ours.entries['/hidden/old'], undefined)
    const kernel = await withKernelMount(`lowerdir=${lowers.join(':')},redirect_dir=on`, join(dir, 'mnt'), () => readTree(join(dir, 'mnt'), { unreadable: true }))
    assert.deepEqual(diffTrees(kernel, ours), [])
    await assert.rejects(fs.writeFile('/x', 'y'), { code: 'EROFS' })
  })
})

test('directory layers: user.overlay.* with userxattr', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const lowers = await makeLowers(dir, 'user.overlay.')
    const fs = await openDirStack({ lowerdir: lowers, userxattr: true })
    const ours = await readTree(fs, { unreadable: true })
    assert.equal(ours.entries['/hidden/old'], undefined)
    assert.equal(ours.entries['/a/xgone'], undefined)
    // userxattr implies redirect_dir=nofollow, as in the kernel: a redirected dir cannot be looked up
    assert.equal(ours.errors?.['/renamed'], 'EPERM')
    await rejectsWith(openDirStack({ lowerdir: lowers, userxattr: true, redirectDir: 'on' }), 'EINVAL')
    const kernel = await withKernelMount(`lowerdir=${lowers.join(':')},userxattr`, join(dir, 'mnt'), () => readTree(join(dir, 'mnt'), { unreadable: true }))
    assert.deepEqual(diffTrees(kernel, ours), [])
    // without the option the same layers read as plain dirs: nothing is hidden
    const plain = await readTree(await openDirStack({ lowerdir: lowers }), { unreadable: true })
    assert.ok(plain.entries['/hidden/old'])
  })
})

test('directory layers: redirects are refused as the policy says', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const lowers = await makeLowers(dir)
    const fs = await openDirStack({ lowerdir: lowers, redirectDir: 'nofollow' })
    await rejectsWith(fs.readdir('/renamed'), 'EPERM', '/renamed')
    const follow = await openDirStack({ lowerdir: lowers, redirectDir: 'follow' })
    assert.deepEqual(await follow.readdir('/renamed'), ['inner'])
  })
})

test('directory upper: written as the kernel writes it, and the kernel mounts the same tree', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const lowers = await makeLowers(dir)
    const [upper, work] = [join(dir, 'upper'), join(dir, 'work')]
    await mkdir(upper)
    await mkdir(work)
    const fs = await openDirStack({ lowerdir: lowers, upperdir: upper, workdir: work, redirectDir: 'on' })
    await fs.writeFile('/a/new', 'created')
    const fh = await fs.open('/big', 'r+')
    await fh.write(Buffer.from('middle'), 0, 6, 1 << 20)
    await fh.close()
    await fs.rename('/a/deep', '/deeper')
    await fs.rmdir('/hidden/sub').catch(() => undefined)
    await fs.unlink('/hidden/new')
    await fs.rmdir('/hidden')
    await fs.mkdir('/hidden')
    await fs.writeFile('/hidden/again', 'over a whiteout')
    await fs.link('/h1', '/h3')
    await fs.chmod('/sym', 0o600).catch(() => undefined)
    await fs.chown('/a/new', 1234, 5678)
    await fs.setxattr('/deeper/f', 'user.more', 'yes')
    await fs.unlink('/sym')
    await fs.rename('/rel2', '/a/rel3')
    const ours = await readTree(fs, { unreadable: true })
    // the kernel's format on disk
    assert.ok((await lstat(join(upper, 'sym'))).isCharacterDevice())
    assert.equal((await getAttribute(join(upper, 'deeper'), 'trusted.overlay.redirect')).toString(), '/a/deep')
    assert.equal((await getAttribute(join(upper, 'hidden'), 'trusted.overlay.opaque')).toString(), 'y')
    assert.equal((await stat(join(upper, 'big'))).size, 3 << 20)
    await mkdir(join(dir, 'kwork'))
    const kernel = await withKernelMount(`lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${join(dir, 'kwork')},redirect_dir=on`, join(dir, 'mnt'), () => readTree(join(dir, 'mnt'), { unreadable: true }))
    assert.deepEqual(diffTrees(kernel, ours), [])
    // and the other way round: the upper opened again shows what the kernel showed
    const again = await openDirStack({ lowerdir: lowers, upperdir: upper, workdir: work, redirectDir: 'on' })
    assert.deepEqual(diffTrees(kernel, await readTree(again, { unreadable: true })), [])
  })
})

test('directory layers over a store snapshot: copy-up copies the data into the directory upper', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    await withStore(async (store) => {
      const src = join(dir, 'src')
      await mkdir(join(src, 'd'), { recursive: true })
      await writeFile(join(src, 'd/f'), Buffer.alloc(200000, 3))
      await store.snapshotDir(src, { name: 'base' })
      const [upper, work] = [join(dir, 'upper'), join(dir, 'work')]
      await mkdir(upper)
      await mkdir(work)
      const fs = store.stackFs({ base: 'base', lowerdir: [], upperdir: upper, workdir: work })
      const fh = await fs.open('/d/f', 'r+')
      await fh.write(Buffer.from('xyz'), 0, 3, 100000)
      await fh.close()
      const host = await readFile(join(upper, 'd/f'))
      assert.equal(host.length, 200000)
      assert.equal(host.subarray(100000, 100003).toString(), 'xyz')
      assert.equal(host[0], 3)
      // the snapshot itself is unchanged
      assert.equal((await store.fs('base').readFile('/d/f') as Buffer)[100000], 3)
    })
  })
})

test('directory stacks: bad options are refused with the path named', async (t) => {
  await withTempDir('strata-dirlayer-', async (dir) => {
    await writeFile(join(dir, 'file'), '')
    await rejectsWith(openDirStack({ lowerdir: [join(dir, 'missing')] }), 'ENOENT', join(dir, 'missing'))
    await rejectsWith(openDirStack({ lowerdir: [join(dir, 'file')] }), 'ENOTDIR', join(dir, 'file'))
    await rejectsWith(openDirStack({ lowerdir: [] }), 'EINVAL')
    await mkdir(join(dir, 'l'))
    await mkdir(join(dir, 'u/w'), { recursive: true })
    await rejectsWith(openDirStack({ lowerdir: [join(dir, 'l')], upperdir: join(dir, 'u') }), 'EINVAL', join(dir, 'u'))
    await rejectsWith(openDirStack({ lowerdir: [join(dir, 'l')], upperdir: join(dir, 'u'), workdir: join(dir, 'u/w') }), 'EINVAL', join(dir, 'u/w'))
    assert.deepEqual(await readdir(join(dir, 'u')), ['w'])
    t.diagnostic('refusals leave the upper dir as it was')
  })
})

test('lower hard links: one inode to a store upper, separate inodes to a directory upper (as the kernel without index)', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const low = join(dir, 'low')
    await mkdir(low)
    await writeFile(join(low, 'a'), 'linked')
    await link(join(low, 'a'), join(low, 'b'))
    // directory upper: renaming one name onto the other moves it, as the kernel (index=off) does
    const [upper, work] = [join(dir, 'upper'), join(dir, 'work')]
    await mkdir(upper)
    await mkdir(work)
    const fs = await openDirStack({ lowerdir: [low], upperdir: upper, workdir: work })
    await fs.rename('/a', '/b')
    assert.deepEqual(await fs.readdir('/'), ['b'])
    await mkdir(join(dir, 'kwork'))
    await mkdir(join(dir, 'kup'))
    const kernel = await withKernelMount(`lowerdir=${low},upperdir=${join(dir, 'kup')},workdir=${join(dir, 'kwork')}`, join(dir, 'mnt'), async () => {
      await rename(join(dir, 'mnt/a'), join(dir, 'mnt/b'))
      return readdir(join(dir, 'mnt'))
    })
    assert.deepEqual(kernel, ['b'])
    // a write through one name after copy-up is not seen through the other (the link broke)
    await mkdir(join(dir, 'up2'))
    await mkdir(join(dir, 'w2'))
    const fs2 = await openDirStack({ lowerdir: [low], upperdir: join(dir, 'up2'), workdir: join(dir, 'w2') })
    await fs2.appendFile('/a', '+more')
    assert.equal(String(await fs2.readFile('/b')), 'linked')
    // store upper: the rename is a no-op, and the names stay one inode across copy-up
    await withStore(async (store) => {
      await store.importLayer(low, { format: 'overlay', name: 'low' })
      await store.prepare('work', 'low')
      const sfs = store.fs('work')
      await sfs.rename('/a', '/b')
      assert.deepEqual(await sfs.readdir('/'), ['a', 'b'])
      await sfs.appendFile('/a', '+more')
      assert.equal(String(await sfs.readFile('/b')), 'linked+more')
    })
  })
})

test('directory upper: an open file keeps its data across rename, unlink and copy-up of another link', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirlayer-', async (dir) => {
    const [low, upper, work] = ['low', 'upper', 'work'].map((n) => join(dir, n))
    for (const d of [low, upper, work]) await mkdir(d)
    await writeFile(join(low, 'a'), 'lower data')
    await link(join(low, 'a'), join(low, 'b'))
    const fs = await openDirStack({ lowerdir: [low], upperdir: upper, workdir: work })
    await fs.writeFile('/new', 'upper data')
    const held = await fs.open('/new', 'r')
    // the name moves and a new file takes it: the handle still reads its own file
    await fs.rename('/new', '/moved')
    await fs.writeFile('/new', 'other file')
    assert.equal(String(await held.readFile()), 'upper data')
    await fs.unlink('/moved')
    assert.equal(String(await held.readFile()), 'upper data')
    await held.close()
    // a lower hard link open through one name stays on the lower file when the other is copied up
    const lowerHeld = await fs.open('/b', 'r')
    await fs.rename('/a', '/c')
    await fs.appendFile('/c', ' changed')
    assert.equal(String(await lowerHeld.readFile()), 'lower data')
    await lowerHeld.close()
    assert.equal(String(await fs.readFile('/c')), 'lower data changed')
  })
})

/**
 * Six lower layers, top first, under which a lookup in `d` stops at different depths: a whiteout
 * (`w`, in the third), a file over dirs (`f`, in the second), an opaque dir (`o`, in the fourth);
 * `d/sub` goes through all of them, the bottom one alone holding `d/sub/target`.
 */
async function makeDeepLowers(root: string): Promise<string[]> {
  const layers = [0, 1, 2, 3, 4, 5].map((i) => join(root, `l${i}`))
  for (const [i, l] of layers.entries()) {
    await mkdir(join(l, 'd/sub'), { recursive: true })
    await writeFile(join(l, `d/sub/own-${i}`), `layer ${i}`)
  }
  whiteout(join(layers[2], 'd/w'))
  await writeFile(join(layers[1], 'd/f'), 'a file above dirs')
  await mkdir(join(layers[3], 'd/o'))
  await xattr(join(layers[3], 'd/o'), 'trusted.overlay.opaque', 'y')
  await writeFile(join(layers[3], 'd/o/mine'), 'in the opaque dir')
  for (const l of layers.slice(2)) {
    await mkdir(join(l, 'd/f'), { recursive: true })
    await writeFile(join(l, 'd/f/in'), 'under a file')
  }
  for (const l of layers.slice(3)) await writeFile(join(l, 'd/w'), 'whited out')
  for (const l of layers.slice(4)) {
    await mkdir(join(l, 'd/o'), { recursive: true })
    await writeFile(join(l, 'd/o/x'), 'under an opaque dir')
  }
  await writeFile(join(layers[5], 'd/sub/target'), 'bottom only')
  return layers
}

const DEEP_PATHS = ['d/sub/target', 'd/sub/own-0', 'd/sub/own-5', 'd/w', 'd/f', 'd/f/in', 'd/o/mine', 'd/o/x', 'd/sub/none', 'd/none/x']

/** What a path shows: its type and size, or that nothing is there. */
async function shownAt(tree: LowerTree, path: string): Promise<string> {
  let node: LowerNode | undefined = tree.root
  for (const name of path.split('/')) {
    if (!node || node.type !== 4) return 'none'
    node = await tree.lookup(node, name)
  }
  if (!node) return 'none'
  const rec = await tree.inode(node)
  return node.type === 4 ? 'dir' : `file of ${rec.size}`
}

async function kernelShows(mnt: string, path: string): Promise<string> {
  const st = await lstat(join(mnt, path)).catch(() => undefined)
  if (!st) return 'none'
  return st.isDirectory() ? 'dir' : `file of ${st.size}`
}

test('deep directory stacks: probes made ahead, at once or in the pool, and kept lookups answer as the kernel', async (t) => {
  if (kernelReason) return t.skip(kernelReason)
  await withTempDir('strata-dirdeep-', async (dir) => {
    const lowers = await makeDeepLowers(dir)
    // waitedNs 0: every probe after the first is made in the pool, as on a cold cache
    const stack = (waitedNs?: bigint): LowerTree =>
      stackLayers(lowers.map((d) => new DirLayer(d, { allocIno: allocDirLayerIno, waitedNs })), new EmptyTree(), redirectConfig(), () => false)
    const atOnce = stack()
    const inPool = stack(0n)
    const mnt = join(dir, 'mnt')
    await withKernelMount(`lowerdir=${lowers.join(':')}`, mnt, async () => {
      for (const path of DEEP_PATHS) {
        const kernel = await kernelShows(mnt, path)
        // twice: the second answer is the kept one
        for (const tree of [atOnce, inPool, atOnce, inPool]) assert.equal(await shownAt(tree, path), kernel, path)
      }
      const fs = await openDirStack({ lowerdir: lowers })
      for (const path of DEEP_PATHS) await fs.lstat(`/${path}`).catch(() => undefined)
      assert.deepEqual(diffTrees(await readTree(mnt), await readTree(fs)), [])
    })
    // a kept lookup gives the very node, so a walk through it finds its children kept too
    const d = await inPool.lookup(inPool.root, 'd')
    assert.ok(d)
    assert.equal(await inPool.lookup(inPool.root, 'd'), d)
  })
})

test('directory layers: a probe in the pool answers as entry() does, and fails quietly', async () => {
  await withTempDir('strata-dirprobe-', async (dir) => {
    await mkdir(join(dir, 'sub'))
    await writeFile(join(dir, 'file'), 'x')
    if (process.getuid?.() === 0) whiteout(join(dir, 'wh'))
    const names = ['sub', 'file', 'wh', 'none']
    const plain = new DirLayer(dir, { allocIno: allocDirLayerIno })
    const probed = new DirLayer(dir, { allocIno: allocDirLayerIno })
    for (const name of names) assert.equal(probed.probe(1, name, true), undefined)
    for (const name of names) {
      const want = await plain.entry(1, name)
      const got = await probed.entry(1, name)
      assert.equal(got?.[1], want?.[1], name)
      assert.equal(got === undefined, want === undefined, name)
    }
    // under a file (ENOTDIR) and in a dir that is gone (ENOENT): nothing, and no rejection left behind
    const file = await probed.entry(1, 'file')
    assert.ok(file)
    probed.probe(file[0], 'x', true)
    assert.equal(await probed.entry(file[0], 'x'), undefined)
    const sub = await probed.entry(1, 'sub')
    assert.ok(sub)
    await rm(join(dir, 'sub'), { recursive: true })
    probed.probe(sub[0], 'y', true)
    assert.equal(await probed.entry(sub[0], 'y'), undefined)
  })
})
