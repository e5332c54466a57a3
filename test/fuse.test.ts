import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from '../engine/index.js'
import { fuseUnavailable, serveFuse } from './kdiff/fuse-sides.js'
import { RENAME_EXCHANGE, renameat2, renameat2Available } from './kdiff/renameat2.js'

/**
 * The FUSE front end on what the differential test (kernel-diff, fuse-* modes) does not reach:
 * devices and fifos, read-only mounts, st_ino across copy-up and in listings, ownership of what
 * other users create, open-but-unlinked files, statfs, and persistence through the store; and
 * hard links over a directory upper, where the random operations reach them only now and then.
 */

/** Mounts snapshot `key` of a fresh store through fuse-serve.js; `after` sees the store once unmounted. */
async function withMount(fn: (mnt: string) => Promise<void>, key: 'base' | 'work', after?: (store: Store) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-fuse-'))
  fs.chmodSync(dir, 0o755)
  const src = join(dir, 'src')
  fs.mkdirSync(join(src, 'lib', 'deep'), { recursive: true })
  fs.writeFileSync(join(src, 'lib', 'deep', 'f'), 'deep file\n')
  fs.writeFileSync(join(src, 'big'), Buffer.alloc(3 << 20, 'abcdefgh'))
  fs.mkdirSync(join(src, 'pub'), { mode: 0o777 })
  fs.chmodSync(join(src, 'pub'), 0o777)
  const storePath = join(dir, 'store')
  const store = await Store.open({ path: storePath })
  await store.snapshotDir(src, { name: 'base' })
  await store.prepare('work', 'base')
  await store.close()
  const mnt = join(dir, 'mnt')
  fs.mkdirSync(mnt)
  try {
    const served = await serveFuse('strata', ['store', mnt, storePath, key])
    try {
      await fn(mnt)
    } finally {
      await served.close()
    }
    if (after) {
      const reopened = await Store.open({ path: storePath })
      try {
        await after(reopened)
      } finally {
        await reopened.close()
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Mounts a lower dir made by `fill` with a directory upper (the kernel's format) through fuse-serve.js. */
async function withDirMount(fill: (lower: string) => void, fn: (mnt: string) => Promise<void>, after?: (upper: string) => void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-fuse-dir-'))
  fs.chmodSync(dir, 0o755)
  const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((n) => join(dir, n))
  for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d, { mode: 0o755 })
  fill(lower)
  try {
    const served = await serveFuse('strata', ['dir', mnt, upper, work, lower])
    try {
      await fn(mnt)
    } finally {
      await served.close()
    }
    after?.(upper)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const errorCode = (fn: () => unknown): string | undefined => {
  try {
    fn()
    return undefined
  } catch (err) {
    return (err as { code?: string }).code
  }
}

test('FUSE: a committed snapshot mounts read-only: contents readable, every write EROFS', async (t) => {
  const reason = await fuseUnavailable()
  if (reason) return t.skip(reason)
  await withMount(async (mnt) => {
    assert.equal(fs.readFileSync(join(mnt, 'lib/deep/f'), 'utf8'), 'deep file\n')
    assert.deepEqual(fs.readFileSync(join(mnt, 'big')), Buffer.alloc(3 << 20, 'abcdefgh'))
    assert.equal(errorCode(() => fs.writeFileSync(join(mnt, 'new'), 'x')), 'EROFS')
    assert.equal(errorCode(() => fs.appendFileSync(join(mnt, 'big'), 'x')), 'EROFS')
    assert.equal(errorCode(() => fs.mkdirSync(join(mnt, 'd'))), 'EROFS')
    assert.equal(errorCode(() => fs.unlinkSync(join(mnt, 'big'))), 'EROFS')
    assert.equal(errorCode(() => fs.renameSync(join(mnt, 'lib'), join(mnt, 'lib2'))), 'EROFS')
    const st = fs.statfsSync(mnt)
    assert.ok(st.blocks > 0 && st.bsize > 0)
  }, 'base')
})

test('FUSE: writable snapshot: devices, fifos, st_ino, other users, unlinked open files, persistence', async (t) => {
  const reason = await fuseUnavailable()
  if (reason) return t.skip(reason)
  await withMount(async (mnt) => {
    // st_ino is the same before and after copy-up, in stat and in the listing
    const before = fs.statSync(join(mnt, 'big')).ino
    const fd = fs.openSync(join(mnt, 'big'), 'r+')
    fs.writeSync(fd, Buffer.from('MIDDLE'), 0, 6, 1 << 20)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    assert.equal(fs.statSync(join(mnt, 'big')).ino, before)
    const listed = execFileSync('ls', ['-i1', mnt], { encoding: 'utf8' })
    assert.match(listed, new RegExp(`^\\s*${before} big$`, 'm'))

    // devices and fifos
    execFileSync('mknod', [join(mnt, 'null'), 'c', '1', '3'])
    execFileSync('mkfifo', [join(mnt, 'fifo')])
    const dev = fs.statSync(join(mnt, 'null'))
    assert.ok(dev.isCharacterDevice())
    assert.equal(dev.rdev, 0x103)
    assert.ok(fs.statSync(join(mnt, 'fifo')).isFIFO())
    fs.writeFileSync(join(mnt, 'null'), 'into the device, not the store')
    assert.equal(fs.statSync(join(mnt, 'null')).size, 0)

    // what another user creates is theirs; what they may not touch stays refused
    const asUser = (script: string): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['-e', script], { uid: 1000, gid: 1000, encoding: 'utf8' })
    const made = asUser(`require('fs').writeFileSync(${JSON.stringify(join(mnt, 'pub/mine'))}, 'x'); require('fs').mkdirSync(${JSON.stringify(join(mnt, 'pub/dir'))})`)
    assert.equal(made.status, 0, String(made.stderr))
    for (const p of ['pub/mine', 'pub/dir']) {
      const st = fs.statSync(join(mnt, p))
      assert.deepEqual([st.uid, st.gid], [1000, 1000], p)
    }
    const refused = asUser(`try { require('fs').writeFileSync(${JSON.stringify(join(mnt, 'big'))}, 'x') } catch (e) { console.log(e.code) }`)
    assert.equal(String(refused.stdout).trim(), 'EACCES')

    // a file open after its last name is gone: still read and written through the descriptor
    fs.writeFileSync(join(mnt, 'tmp'), 'kept')
    const held = fs.openSync(join(mnt, 'tmp'), 'r+')
    fs.unlinkSync(join(mnt, 'tmp'))
    assert.equal(errorCode(() => fs.statSync(join(mnt, 'tmp'))), 'ENOENT')
    fs.writeSync(held, Buffer.from(' and more'), 0, 9, 4)
    const back = Buffer.alloc(13)
    fs.readSync(held, back, 0, 13, 0)
    assert.equal(back.toString(), 'kept and more')
    assert.equal(fs.fstatSync(held).nlink, 0)
    fs.closeSync(held)

    // a lower directory renamed (a redirect), then read through its new name
    fs.renameSync(join(mnt, 'lib'), join(mnt, 'moved'))
    assert.equal(fs.readFileSync(join(mnt, 'moved/deep/f'), 'utf8'), 'deep file\n')
    assert.equal(errorCode(() => fs.statSync(join(mnt, 'lib'))), 'ENOENT')
  }, 'work', async (store) => {
    // what the mount wrote is in the snapshot, and survives its commit
    await store.commit('done', 'work')
    const done = store.fs('done')
    const big = await done.readFile('/big')
    assert.equal(big.subarray(1 << 20, (1 << 20) + 6).toString(), 'MIDDLE')
    assert.equal(big.length, 3 << 20)
    assert.equal(await done.readFile('/moved/deep/f', 'utf8'), 'deep file\n')
    assert.equal((await done.lstat('/pub/mine')).uid, 1000)
    assert.ok((await done.lstat('/null')).isCharacterDevice())
    assert.deepEqual((await done.readdir('/')).sort(), ['big', 'fifo', 'moved', 'null', 'pub'])
  })
})

test('FUSE over a directory upper: an upper hard link is one inode, a lower one parts at copy-up without stale caches', async (t) => {
  const reason = await fuseUnavailable()
  if (reason) return t.skip(reason)
  await withDirMount((lower) => {
    fs.writeFileSync(join(lower, 'a'), 'lower a\n')
    fs.linkSync(join(lower, 'a'), join(lower, 'b'))
    fs.writeFileSync(join(lower, 'x'), 'lower x\n')
    fs.linkSync(join(lower, 'x'), join(lower, 'y'))
  }, async (mnt) => {
    const p = (name: string): string => join(mnt, name)
    assert.equal(fs.statSync(p('a')).ino, fs.statSync(p('b')).ino)

    // the link copies `a` up: `a` and `c` are one upper inode, `b` stays the lower one
    fs.linkSync(p('a'), p('c'))
    assert.equal(fs.statSync(p('a')).ino, fs.statSync(p('c')).ino)
    assert.notEqual(fs.statSync(p('a')).ino, fs.statSync(p('b')).ino)
    // renaming one name of an inode onto another succeeds before any permission check, as on
    // the kernel's overlay, which holds them as one inode: here user 1000 may not write `/`
    const renamed = spawnSync(process.execPath, ['-e', `require('fs').renameSync(${JSON.stringify(p('a'))}, ${JSON.stringify(p('c'))})`], { uid: 1000, gid: 1000, encoding: 'utf8' })
    assert.equal(renamed.status, 0, String(renamed.stderr))
    if (renameat2Available) await renameat2(p('a'), p('c'), RENAME_EXCHANGE, { uid: 1000, gid: 1000 })
    else t.diagnostic('python3 is missing: RENAME_EXCHANGE of one inode is not exercised')
    assert.deepEqual(fs.readdirSync(mnt).sort(), ['a', 'b', 'c', 'x', 'y'])
    fs.writeFileSync(p('c'), 'upper c\n')
    assert.equal(fs.readFileSync(p('a'), 'utf8'), 'upper c\n')
    assert.equal(fs.readFileSync(p('b'), 'utf8'), 'lower a\n')

    // a file held open through the copy-up that opened it: its name, looked up again (the
    // listing), shows every later write at once (data and size), its lower sibling none
    assert.equal(fs.readFileSync(p('x'), 'utf8'), 'lower x\n')
    const held = fs.openSync(p('x'), 'r+')
    try {
      assert.deepEqual(fs.readdirSync(mnt).sort(), ['a', 'b', 'c', 'x', 'y'])
      assert.equal(fs.readFileSync(p('x'), 'utf8'), 'lower x\n')
      assert.equal(fs.statSync(p('x')).size, 8)
      fs.writeSync(held, Buffer.from('written through the held file\n'), 0, 30, 0)
      assert.equal(fs.readFileSync(p('x'), 'utf8'), 'written through the held file\n')
      assert.equal(fs.statSync(p('x')).size, 30)
      assert.equal(fs.readFileSync(p('y'), 'utf8'), 'lower x\n')
      assert.equal(fs.statSync(p('y')).size, 8)
    } finally {
      fs.closeSync(held)
    }
  })
})

/** What the writeback cases leave: the same through the mount, in the store and in an upper dir. */
const writebackExpected = (big: Buffer, w: Buffer, shared: Buffer, datedMtime: number, where: string): void => {
  assert.equal(big.length, 3 << 20, where)
  assert.equal(big.subarray(4998, 5005).toString(), 'ghXYZde', where)
  assert.equal(w.toString(), `${'a'.repeat(10000)}ENDEND`, where)
  assert.equal(shared.toString(), 'root wrote\nuser wrote\n', where)
  assert.equal(datedMtime, 1000, where)
}

/**
 * Writes through the kernel's writeback cache: a write-only handle whose write covers part of a
 * page (the kernel reads the rest through that handle), appends (placed by the kernel, not moved
 * again), a writer who does not own the file (the kernel writes its times back at close),
 * times set after the data, as tar does (kept, not replaced by the write-back), and the times
 * of files already removed, which the kernel writes back at syncfs.
 */
async function writebackCases(mnt: string): Promise<void> {
  const p = (name: string): string => join(mnt, name)
  // a lower file no one has read yet: none of its pages are cached
  const fd = fs.openSync(p('big'), fs.constants.O_WRONLY)
  fs.writeSync(fd, 'XYZ', 5000)
  fs.closeSync(fd)
  fs.writeFileSync(p('w'), 'a'.repeat(10000))
  fs.appendFileSync(p('w'), 'END')
  fs.appendFileSync(p('w'), 'END')
  fs.writeFileSync(p('shared'), 'root wrote\n', { mode: 0o666 })
  fs.chmodSync(p('shared'), 0o666)
  const byUser = spawnSync(process.execPath, ['-e', `require('fs').appendFileSync(${JSON.stringify(p('shared'))}, 'user wrote\\n')`], { uid: 1000, gid: 1000, encoding: 'utf8' })
  assert.equal(byUser.status, 0, String(byUser.stderr))
  const tarLike = fs.openSync(p('dated'), 'wx', 0o600)
  fs.writeSync(tarLike, 'data written before its times are set')
  fs.futimesSync(tarLike, 1000, 1000)
  fs.closeSync(tarLike)
  // the kernel writes back the times it kept for files already removed: syncfs must not fail
  for (let i = 0; i < 20; i++) fs.writeFileSync(p(`gone${i}`), 'soon removed')
  for (let i = 0; i < 20; i++) fs.unlinkSync(p(`gone${i}`))
  execFileSync('sync', ['-f', mnt])
  writebackExpected(fs.readFileSync(p('big')), fs.readFileSync(p('w')), fs.readFileSync(p('shared')), fs.statSync(p('dated')).mtimeMs / 1000, 'through the mount')
}


test('FUSE writeback cache: partial pages through write-only handles, appends, other writers, times set after the data', async (t) => {
  const reason = await fuseUnavailable()
  if (reason) return t.skip(reason)
  await withMount(writebackCases, 'work', async (store) => {
    const fsw = store.fs('work')
    writebackExpected(await fsw.readFile('/big'), await fsw.readFile('/w'), await fsw.readFile('/shared'), (await fsw.stat('/dated')).mtimeMs / 1000, 'in the store after unmount')
  })
  await withDirMount((lower) => fs.writeFileSync(join(lower, 'big'), Buffer.alloc(3 << 20, 'abcdefgh')), writebackCases, (upper) => {
    writebackExpected(fs.readFileSync(join(upper, 'big')), fs.readFileSync(join(upper, 'w')), fs.readFileSync(join(upper, 'shared')), fs.statSync(join(upper, 'dated')).mtimeMs / 1000, 'in the upper dir after unmount')
  })
})
