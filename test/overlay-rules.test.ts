import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { constants } from 'node:fs'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, type SnapshotFs, type Store } from '../engine/index.js'
import { StoreLayer } from '../engine/store/layer.js'
import { snapshotKey } from '../engine/store/keys.js'
import { ROOT_INO, type SnapshotRecord } from '../engine/store/records.js'
import { countChunks, patternBytes, rejectsWith, withStore } from './helpers.js'

/**
 * The lookup, copy-up, whiteout, opaque and redirect rules of the kernel's overlayfs, checked on
 * active snapshots and again after commit (where the merged index answers).
 */

/** Builds a committed snapshot `name` on `parent` from what `fill` does in a scratch active snapshot. */
async function layer(store: Store, name: string, parent: string | undefined, fill: (fs: SnapshotFs) => Promise<void>): Promise<void> {
  const key = `${name}.build`
  await store.prepare(key, parent)
  await fill(store.fs(key))
  await store.commit(name, key)
}

/** An active snapshot `key` on `parent`, and its fs. */
async function active(store: Store, key: string, parent?: string): Promise<SnapshotFs> {
  await store.prepare(key, parent)
  return store.fs(key)
}

/** rm -r, as a caller of the fs API would write it. */
async function removeTree(fs: SnapshotFs, path: string): Promise<void> {
  for (const d of await fs.readdir(path, { withFileTypes: true })) {
    const child = `${path}/${d.name}`
    if (d.isDirectory()) await removeTree(fs, child)
    else await fs.unlink(child)
  }
  await fs.rmdir(path)
}

const sorted = (a: string[]): string[] => [...a].sort()

/** Commits `key` as `name` and opens a fresh active child `childKey` over it. */
async function commitAndChild(store: Store, name: string, key: string, childKey: string): Promise<SnapshotFs> {
  await store.commit(name, key)
  return active(store, childKey, name)
}

describe('lookup through layers', () => {
  test('an upper file hides the lower file of the same name', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/f', 'lower') })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/f', 'upper')
    assert.equal(await fs.readFile('/f', 'utf8'), 'upper')
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal(await child.readFile('/f', 'utf8'), 'upper')
    assert.equal(await store.fs('base').readFile('/f', 'utf8'), 'lower')
  }))

  test('an upper file hides a lower dir, with no merging', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/d'); await fs.writeFile('/d/x', 'x') })
    const fs = await active(store, 'a', 'base')
    await removeTree(fs, '/d')
    await fs.writeFile('/d', 'now a file')
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.ok((await f.stat('/d')).isFile())
      assert.equal(await f.readFile('/d', 'utf8'), 'now a file')
      await rejectsWith(f.readdir('/d'), 'ENOTDIR', '/d')
      await rejectsWith(f.stat('/d/x'), 'ENOTDIR', '/d/x')
    }
    await check(fs)
    await check(await commitAndChild(store, 'top', 'a', 'b'))
  }))

  test('an upper dir over a lower file shows only its own names', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/f', 'file') })
    const fs = await active(store, 'a', 'base')
    await fs.unlink('/f')
    await fs.mkdir('/f')
    await fs.writeFile('/f/inside', 'i')
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.ok((await f.stat('/f')).isDirectory())
      assert.deepEqual(await f.readdir('/f'), ['inside'])
      await rejectsWith(f.readFile('/f'), 'EISDIR', '/f')
    }
    await check(fs)
    await check(await commitAndChild(store, 'top', 'a', 'b'))
  }))

  test('dirs merge: upper names first, then lower names, none twice', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/d')
      for (const n of ['a', 'b', 'c']) await fs.writeFile(`/d/${n}`, `lower ${n}`)
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/d/b', 'upper b')
    await fs.writeFile('/d/z', 'upper z')
    const names = await fs.readdir('/d')
    assert.deepEqual(sorted(names), ['a', 'b', 'c', 'z'])
    assert.equal(new Set(names).size, names.length)
    // the names the upper dir holds come before the names only the lower dir has
    const lastUpper = Math.max(names.indexOf('b'), names.indexOf('z'))
    const firstLowerOnly = Math.min(names.indexOf('a'), names.indexOf('c'))
    assert.ok(lastUpper < firstLowerOnly, `upper names first: ${names.join(',')}`)
    assert.equal(await fs.readFile('/d/b', 'utf8'), 'upper b')
    assert.equal(await fs.readFile('/d/a', 'utf8'), 'lower a')
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.deepEqual(sorted(await child.readdir('/d')), ['a', 'b', 'c', 'z'])
    assert.equal(await child.readFile('/d/b', 'utf8'), 'upper b')
  }))
})

describe('whiteouts and opaque dirs', () => {
  test('unlink of a lower file and rmdir of a lower dir hide them, after commit and in a further child', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/f', 'f')
      await fs.mkdir('/empty')
      await fs.writeFile('/keep', 'k')
    })
    const fs = await active(store, 'a', 'base')
    await fs.unlink('/f')
    await fs.rmdir('/empty')
    const check = async (f: SnapshotFs): Promise<void> => {
      await rejectsWith(f.stat('/f'), 'ENOENT', '/f')
      await rejectsWith(f.stat('/empty'), 'ENOENT', '/empty')
      assert.deepEqual(await f.readdir('/'), ['keep'])
    }
    await check(fs)
    const child = await commitAndChild(store, 'top', 'a', 'b')
    await check(child)
    await check(store.fs('top'))
    await child.writeFile('/other', 'o')
    const grandchild = await commitAndChild(store, 'top2', 'b', 'c')
    await rejectsWith(grandchild.stat('/f'), 'ENOENT', '/f')
    await rejectsWith(grandchild.stat('/empty'), 'ENOENT', '/empty')
    assert.deepEqual(sorted(await grandchild.readdir('/')), ['keep', 'other'])
  }))

  test('a file created over a whiteout shows the new content only', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/f', 'old content, longer') })
    const fs = await active(store, 'a', 'base')
    await fs.unlink('/f')
    await fs.writeFile('/f', 'new')
    assert.equal(await fs.readFile('/f', 'utf8'), 'new')
    assert.equal((await fs.stat('/f')).size, 3)
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal(await child.readFile('/f', 'utf8'), 'new')
    assert.deepEqual(await child.readdir('/'), ['f'])
  }))

  test('mkdir over a whiteout makes an opaque dir that stays opaque after commit', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/d')
      await fs.writeFile('/d/x', 'x')
      await fs.mkdir('/d/sub')
    })
    const fs = await active(store, 'a', 'base')
    await removeTree(fs, '/d')
    await fs.mkdir('/d')
    assert.deepEqual(await fs.readdir('/d'), [])
    await rejectsWith(fs.stat('/d/x'), 'ENOENT', '/d/x')
    await fs.writeFile('/d/new', 'n')
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.deepEqual(await f.readdir('/d'), ['new'])
      await rejectsWith(f.stat('/d/x'), 'ENOENT', '/d/x')
      await rejectsWith(f.stat('/d/sub'), 'ENOENT', '/d/sub')
    }
    await check(fs)
    const child = await commitAndChild(store, 'top', 'a', 'b')
    await check(child)
    // a new name in the committed opaque dir still does not bring the old lower names back
    await child.writeFile('/d/more', 'm')
    assert.deepEqual(sorted(await child.readdir('/d')), ['more', 'new'])
  }))

  test('rm -r of a merged dir, then re-creating it, shows nothing of the old tree', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/d/sub', { recursive: true })
      await fs.writeFile('/d/a', 'a')
      await fs.writeFile('/d/sub/b', 'b')
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/d/c', 'c') // makes /d a merged dir
    await removeTree(fs, '/d')
    await rejectsWith(fs.stat('/d'), 'ENOENT', '/d')
    await fs.mkdir('/d/sub', { recursive: true })
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.deepEqual(await f.readdir('/d'), ['sub'])
      assert.deepEqual(await f.readdir('/d/sub'), [])
    }
    await check(fs)
    await check(await commitAndChild(store, 'top', 'a', 'b'))
  }))

  test('an opaque dir stops merging with every layer below it', () => withStore(async (store) => {
    await layer(store, 'l1', undefined, async (fs) => { await fs.mkdir('/d'); await fs.writeFile('/d/one', '1') })
    await layer(store, 'l2', 'l1', async (fs) => { await fs.writeFile('/d/two', '2') })
    await layer(store, 'l3', 'l2', async (fs) => {
      assert.deepEqual(sorted(await fs.readdir('/d')), ['one', 'two'])
      await removeTree(fs, '/d')
      await fs.mkdir('/d')
      await fs.writeFile('/d/three', '3')
    })
    await layer(store, 'l4', 'l3', async (fs) => { await fs.writeFile('/d/four', '4') })
    const fs = await active(store, 'top', 'l4')
    assert.deepEqual(sorted(await fs.readdir('/d')), ['four', 'three'])
    for (const gone of ['one', 'two']) await rejectsWith(fs.stat(`/d/${gone}`), 'ENOENT', `/d/${gone}`)
    assert.deepEqual(sorted(await store.fs('l2').readdir('/d')), ['one', 'two'])
  }))
})

describe('directory reading and inode numbers', () => {
  test('an open DirHandle keeps its listing while entries change', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/d'); await fs.writeFile('/d/lower', 'l') })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/d/upper', 'u')
    const h = await fs.opendir('/d')
    const first = await h.read()
    assert.ok(first)
    await fs.unlink('/d/lower')
    await fs.unlink('/d/upper')
    await fs.writeFile('/d/added', 'a')
    const rest: string[] = []
    for await (const d of h) rest.push(d.name)
    assert.deepEqual(sorted([first.name, ...rest]), ['lower', 'upper'])
    h.rewind()
    const again: string[] = []
    for await (const d of h) again.push(d.name)
    assert.deepEqual(sorted(again), ['lower', 'upper'])
    await h.close()
    assert.deepEqual(await fs.readdir('/d'), ['added'])
  }))

  test('Dirent.ino equals st_ino for upper, lower and merged entries', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/lowerfile', 'l')
      await fs.mkdir('/lowerdir')
      await fs.mkdir('/merged')
      await fs.writeFile('/merged/x', 'x')
      await fs.symlink('lowerfile', '/link')
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/upperfile', 'u')
    await fs.writeFile('/merged/y', 'y')
    await fs.chmod('/lowerfile', 0o600) // copied up: its upper name must keep the inode number
    const check = async (f: SnapshotFs, dir: string): Promise<number> => {
      const entries = await f.readdir(dir, { withFileTypes: true })
      for (const d of entries) {
        const p = dir === '/' ? `/${d.name}` : `${dir}/${d.name}`
        assert.equal(d.ino, (await f.lstat(p)).ino, `d_ino of ${p}`)
      }
      return entries.length
    }
    assert.equal(await check(fs, '/'), 5)
    assert.equal(await check(fs, '/merged'), 2)
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal(await check(child, '/'), 5)
    assert.equal(await check(child, '/merged'), 2)
    assert.equal(await check(store.fs('top'), '/merged'), 2)
  }))

  test('st_ino stays the same across copy-up and across commit', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/d'); await fs.writeFile('/d/f', 'data') })
    const lowerFs = store.fs('base')
    const fileIno = (await lowerFs.stat('/d/f')).ino
    const dirIno = (await lowerFs.stat('/d')).ino
    const fs = await active(store, 'a', 'base')
    assert.equal((await fs.stat('/d/f')).ino, fileIno)
    await fs.chmod('/d/f', 0o600)
    await fs.appendFile('/d/f', ' more')
    assert.equal((await fs.stat('/d/f')).ino, fileIno)
    assert.equal((await fs.stat('/d')).ino, dirIno)
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal((await child.stat('/d/f')).ino, fileIno)
    assert.equal((await child.stat('/d')).ino, dirIno)
    assert.equal((await store.fs('top').stat('/d/f')).ino, fileIno)
  }))
})

describe('copy-up', () => {
  test('is metadata-only: a small write into a big lower file stores about one chunk', () => withStore(async (store) => {
    const size = 4 * 1024 * 1024
    const original = patternBytes(size, 7)
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/big', original) })
    const fs = await active(store, 'a', 'base')
    const before = await countChunks(store)
    const h = await fs.open('/big', 'r+')
    const patch = Buffer.alloc(4096, 0x5a)
    await h.write(patch, 0, patch.length, 2 * 1024 * 1024 + 1000)
    await h.close()
    const grown = (await countChunks(store)) - before
    assert.ok(grown >= 1 && grown <= 2, `chunks added by a 4 KiB write: ${grown}`)
    const expected = Buffer.from(original)
    patch.copy(expected, 2 * 1024 * 1024 + 1000)
    assert.ok((await fs.readFile('/big')).equals(expected))
    assert.ok((await store.fs('base').readFile('/big')).equals(original))
    const beforeCommit = await countChunks(store)
    await store.commit('top', 'a')
    assert.equal(await countChunks(store), beforeCommit)
  }))

  test('hard links stay one inode across copy-up', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/a', 'original')
      await fs.link('/a', '/b')
    })
    const fs = await active(store, 'a', 'base')
    const ino = (await fs.stat('/a')).ino
    assert.equal((await fs.stat('/b')).ino, ino)
    assert.equal((await fs.stat('/b')).nlink, 2)
    await fs.writeFile('/a', 'changed through a')
    assert.equal(await fs.readFile('/b', 'utf8'), 'changed through a')
    assert.equal((await fs.stat('/b')).ino, ino)
    assert.equal((await fs.stat('/a')).nlink, 2)
    await fs.link('/b', '/c')
    for (const p of ['/a', '/b', '/c']) assert.equal((await fs.stat(p)).nlink, 3, `nlink of ${p}`)
    await fs.unlink('/a')
    for (const p of ['/b', '/c']) assert.equal((await fs.stat(p)).nlink, 2, `nlink of ${p}`)
    await fs.writeFile('/c', 'changed through c')
    assert.equal(await fs.readFile('/b', 'utf8'), 'changed through c')
    const child = await commitAndChild(store, 'top', 'a', 'b')
    for (const p of ['/b', '/c']) {
      assert.equal(await child.readFile(p, 'utf8'), 'changed through c')
      const st = await child.stat(p)
      assert.equal(st.nlink, 2)
      assert.equal(st.ino, ino)
    }
    await rejectsWith(child.stat('/a'), 'ENOENT', '/a')
    await child.unlink('/b')
    assert.equal((await child.stat('/c')).nlink, 1)
    assert.equal(await child.readFile('/c', 'utf8'), 'changed through c')
  }))

  test('unlinking one of two lower hard links keeps the other name right after commit', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/a', 'old')
      await fs.link('/a', '/b')
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/a', 'written through a')
    await fs.unlink('/a')
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.equal(await f.readFile('/b', 'utf8'), 'written through a')
      assert.equal((await f.stat('/b')).nlink, 1)
      assert.deepEqual(await f.readdir('/'), ['b'])
    }
    await check(fs)
    await check(store.fs('a'))
    const child = await commitAndChild(store, 'top', 'a', 'b')
    await check(child)
    await check(store.fs('top'))
    // the inode record went up without its remaining name; a later copy-up must start from it
    await child.appendFile('/b', '!')
    assert.equal(await child.readFile('/b', 'utf8'), 'written through a!')
    await check(store.fs('top'))
    // and unlinking without writing first leaves the lower data with a link count of one
    await store.prepare('c', 'base')
    const other = store.fs('c')
    await other.unlink('/b')
    assert.equal((await other.stat('/a')).nlink, 1)
    await store.commit('top2', 'c')
    assert.equal((await store.fs('top2').stat('/a')).nlink, 1)
    assert.equal(await store.fs('top2').readFile('/a', 'utf8'), 'old')
    assert.ok((await store.fsck()).ok)
  }))

  test('a lower hard link open for reading follows its inode up when another name is unlinked', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/a', 'old')
      await fs.link('/a', '/b')
    })
    const fs = await active(store, 'a', 'base')
    const reader = await fs.open('/b', 'r')
    await fs.unlink('/a')
    const writer = await fs.open('/b', 'r+')
    await writer.write(Buffer.from('NEW'), 0, 3, 0)
    await writer.close()
    assert.equal((await reader.readFile()).toString(), 'NEW')
    await reader.close()
    assert.equal(await fs.readFile('/b', 'utf8'), 'NEW')
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal(await child.readFile('/b', 'utf8'), 'NEW')
  }))

  test('a read-only handle opened before copy-up sees data written after it', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/f', 'aaaaaaaa') })
    const fs = await active(store, 'a', 'base')
    const reader = await fs.open('/f', 'r')
    const writer = await fs.open('/f', 'r+')
    await writer.write(Buffer.from('BB'), 0, 2, 3)
    const buf = Buffer.alloc(8)
    await reader.read(buf, 0, 8, 0)
    assert.equal(buf.toString(), 'aaaBBaaa')
    await writer.close()
    await reader.read(buf, 0, 8, 0)
    assert.equal(buf.toString(), 'aaaBBaaa')
    await reader.close()
    assert.equal(await fs.readFile('/f', 'utf8'), 'aaaBBaaa')
  }))

  test('concurrent appends to a lower file never overlap', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/log', 'start\n') })
    const fs = await active(store, 'a', 'base')
    const h = await fs.open('/log', 'a')
    const lines = Array.from({ length: 12 }, (_, i) => `line ${i}\n`)
    await Promise.all([
      ...lines.slice(0, 6).map((l) => h.write(Buffer.from(l))),
      ...lines.slice(6).map((l) => fs.appendFile('/log', l)),
    ])
    await h.close()
    const text = await fs.readFile('/log', 'utf8')
    assert.ok(text.startsWith('start\n'))
    assert.deepEqual(sorted(text.split('\n').slice(1, -1).map((l) => `${l}\n`)), sorted(lines))
    assert.equal(text.length, 'start\n'.length + lines.join('').length)
  }))

  test('an unlinked file stays readable and writable until closed', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/lower', 'lower data') })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/upper', 'upper data')
    for (const p of ['/lower', '/upper']) {
      const h = await fs.open(p, 'r+')
      await fs.unlink(p)
      await rejectsWith(fs.stat(p), 'ENOENT', p)
      const before = await h.readFile()
      await h.write(Buffer.from('XY'), 0, 2, 0)
      const after = await h.readFile()
      assert.equal(after.toString(), 'XY' + before.subarray(2).toString())
      assert.equal((await h.stat()).nlink, 0)
      await h.close()
      await rejectsWith(fs.stat(p), 'ENOENT', p)
    }
    assert.deepEqual(await fs.readdir('/'), [])
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.deepEqual(await child.readdir('/'), [])
    assert.ok((await store.fsck()).ok)
  }))
})

describe('directory renames and redirects', () => {
  const lowerTree = async (fs: SnapshotFs): Promise<void> => {
    await fs.mkdir('/a/d/s', { recursive: true })
    await fs.mkdir('/b')
    await fs.writeFile('/a/d/f', 'f')
    await fs.writeFile('/a/d/s/g', 'g')
  }
  const assertMoved = async (fs: SnapshotFs, from: string, to: string): Promise<void> => {
    await rejectsWith(fs.stat(from), 'ENOENT', from)
    assert.deepEqual(sorted(await fs.readdir(to)), ['f', 's'])
    assert.equal(await fs.readFile(`${to}/f`, 'utf8'), 'f')
    assert.equal(await fs.readFile(`${to}/s/g`, 'utf8'), 'g')
  }

  test("renaming a lower dir works with redirectDir 'on', through commits and back", () => withStore(async (store) => {
    await layer(store, 'base', undefined, lowerTree)
    const fs = await active(store, 'a', 'base')
    const ino = (await fs.stat('/a/d')).ino
    await fs.rename('/a/d', '/b/e')
    await assertMoved(fs, '/a/d', '/b/e')
    assert.equal((await fs.stat('/b/e')).ino, ino)
    await fs.writeFile('/b/e/new', 'n')
    const child = await commitAndChild(store, 'c1', 'a', 'b')
    await rejectsWith(child.stat('/a/d'), 'ENOENT', '/a/d')
    assert.deepEqual(sorted(await child.readdir('/b/e')), ['f', 'new', 's'])
    assert.equal(await child.readFile('/b/e/s/g', 'utf8'), 'g')
    // a second rename, in the child, of the dir that arrived by redirect
    await child.rename('/b/e', '/top')
    assert.deepEqual(sorted(await child.readdir('/top')), ['f', 'new', 's'])
    await rejectsWith(child.stat('/b/e'), 'ENOENT', '/b/e')
    const grandchild = await commitAndChild(store, 'c2', 'b', 'c')
    assert.equal(await grandchild.readFile('/top/s/g', 'utf8'), 'g')
    // and back to where it started
    await grandchild.rename('/top', '/a/d')
    assert.deepEqual(sorted(await grandchild.readdir('/a/d')), ['f', 'new', 's'])
    await rejectsWith(grandchild.stat('/top'), 'ENOENT', '/top')
    const last = await commitAndChild(store, 'c3', 'c', 'd')
    assert.deepEqual(sorted(await last.readdir('/a/d')), ['f', 'new', 's'])
    assert.equal(await last.readFile('/a/d/s/g', 'utf8'), 'g')
    assert.deepEqual(sorted(await last.readdir('/')), ['a', 'b'])
    assert.deepEqual(await last.readdir('/b'), [])
  }))

  test('renaming a lower dir within its parent keeps its contents', () => withStore(async (store) => {
    await layer(store, 'base', undefined, lowerTree)
    const fs = await active(store, 'a', 'base')
    await fs.rename('/a/d', '/a/renamed')
    await assertMoved(fs, '/a/d', '/a/renamed')
    await assertMoved(await commitAndChild(store, 'top', 'a', 'b'), '/a/d', '/a/renamed')
  }))

  for (const policy of ['follow', 'nofollow', 'off'] as const) {
    test(`renaming a lower dir gives EXDEV with redirectDir '${policy}' and changes nothing`, () => withStore(async (store) => {
      await layer(store, 'base', undefined, lowerTree)
      await store.prepare('a', 'base')
      const fs = store.fs('a', { redirectDir: policy })
      await rejectsWith(fs.rename('/a/d', '/b/e'), 'EXDEV', '/a/d')
      await rejectsWith(fs.rename('/a/d', '/a/e'), 'EXDEV', '/a/d')
      await assertMoved(fs, '/b/e', '/a/d')
      // a pure upper dir, and a lower file, move without a redirect under every policy
      await fs.mkdir('/fresh')
      await fs.writeFile('/fresh/x', 'x')
      await fs.rename('/fresh', '/b/moved')
      assert.deepEqual(await fs.readdir('/b/moved'), ['x'])
      await fs.rename('/a/d/f', '/b/f')
      assert.equal(await fs.readFile('/b/f', 'utf8'), 'f')
      await rejectsWith(fs.stat('/a/d/f'), 'ENOENT', '/a/d/f')
    }))
  }

  test('a redirect longer than redirectMax gives EXDEV; a short one is made', () => withStore(async (store) => {
    await layer(store, 'base', undefined, lowerTree)
    await store.prepare('a', 'base')
    const fs = store.fs('a', { redirectMax: 3 })
    // across parents the redirect is the absolute lower path '/a/d': four bytes
    await rejectsWith(fs.rename('/a/d', '/b/e'), 'EXDEV', '/a/d')
    await assertMoved(fs, '/b/e', '/a/d')
    // within the parent it is the old name 'd'
    await fs.rename('/a/d', '/a/e')
    await assertMoved(fs, '/a/d', '/a/e')
  }))

  test('a pure upper dir renamed over an emptied merged dir keeps the lower names hidden', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/d'); await fs.writeFile('/d/x', 'x') })
    const fs = await active(store, 'a', 'base')
    await fs.mkdir('/n')
    await fs.writeFile('/n/y', 'y')
    await fs.unlink('/d/x')
    await fs.rename('/n', '/d')
    const check = async (f: SnapshotFs): Promise<void> => {
      assert.deepEqual(await f.readdir('/d'), ['y'])
      await rejectsWith(f.stat('/d/x'), 'ENOENT', '/d/x')
      await rejectsWith(f.stat('/n'), 'ENOENT', '/n')
    }
    await check(fs)
    await check(await commitAndChild(store, 'top', 'a', 'b'))
  }))

  test('a pure upper dir moved into a merged dir does not merge with a same-named lower dir elsewhere', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/p/q', { recursive: true }); await fs.writeFile('/p/q/old', 'o') })
    const fs = await active(store, 'a', 'base')
    await removeTree(fs, '/p/q')
    await fs.mkdir('/q')
    await fs.writeFile('/q/new', 'n')
    await fs.rename('/q', '/p/q')
    assert.deepEqual(await fs.readdir('/p/q'), ['new'])
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.deepEqual(await child.readdir('/p/q'), ['new'])
  }))

  test('RENAME_NOREPLACE refuses an existing target', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/lower', 'l') })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/src', 's')
    await rejectsWith(fs.rename('/src', '/lower', RENAME_NOREPLACE), 'EEXIST', '/lower')
    assert.equal(await fs.readFile('/lower', 'utf8'), 'l')
    assert.equal(await fs.readFile('/src', 'utf8'), 's')
    await fs.rename('/src', '/free', RENAME_NOREPLACE)
    assert.equal(await fs.readFile('/free', 'utf8'), 's')
  }))

  test('RENAME_EXCHANGE swaps files and dirs, lower ones included', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/lf', 'lower file')
      await fs.mkdir('/ld')
      await fs.writeFile('/ld/in', 'in lower dir')
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/uf', 'upper file')
    await fs.mkdir('/ud')
    await fs.writeFile('/ud/in', 'in upper dir')
    await fs.rename('/lf', '/uf', RENAME_EXCHANGE)
    assert.equal(await fs.readFile('/lf', 'utf8'), 'upper file')
    assert.equal(await fs.readFile('/uf', 'utf8'), 'lower file')
    await fs.rename('/ld', '/ud', RENAME_EXCHANGE)
    assert.equal(await fs.readFile('/ld/in', 'utf8'), 'in upper dir')
    assert.equal(await fs.readFile('/ud/in', 'utf8'), 'in lower dir')
    await fs.rename('/lf', '/ld', RENAME_EXCHANGE)
    assert.ok((await fs.stat('/lf')).isDirectory())
    assert.equal(await fs.readFile('/ld', 'utf8'), 'upper file')
    await rejectsWith(fs.rename('/lf', '/missing', RENAME_EXCHANGE), 'ENOENT', '/missing')
    const child = await commitAndChild(store, 'top', 'a', 'b')
    assert.equal(await child.readFile('/lf/in', 'utf8'), 'in upper dir')
    assert.equal(await child.readFile('/ud/in', 'utf8'), 'in lower dir')
    assert.equal(await child.readFile('/uf', 'utf8'), 'lower file')
    assert.equal(await child.readFile('/ld', 'utf8'), 'upper file')
    assert.deepEqual(sorted(await child.readdir('/')), ['ld', 'lf', 'ud', 'uf'])
  }))

  test('rename errors: EISDIR, ENOTDIR, ENOTEMPTY, EINVAL', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/full')
      await fs.writeFile('/full/lower', 'l')
    })
    const fs = await active(store, 'a', 'base')
    await fs.writeFile('/file', 'f')
    await fs.mkdir('/dir/sub', { recursive: true })
    await fs.mkdir('/empty')
    await rejectsWith(fs.rename('/file', '/empty'), 'EISDIR', '/empty')
    await rejectsWith(fs.rename('/empty', '/file'), 'ENOTDIR', '/file')
    await rejectsWith(fs.rename('/empty', '/full'), 'ENOTEMPTY', '/full')
    await rejectsWith(fs.rename('/empty', '/dir'), 'ENOTEMPTY', '/dir')
    await rejectsWith(fs.rename('/dir', '/dir/sub/inside'), 'EINVAL', '/dir')
    await rejectsWith(fs.rename('/missing', '/x'), 'ENOENT', '/missing')
    assert.deepEqual(sorted(await fs.readdir('/')), ['dir', 'empty', 'file', 'full'])
    assert.deepEqual(await fs.readdir('/full'), ['lower'])
  }))
})

describe('redirect validation and policies', () => {
  /**
   * Writes `redirect` straight into the upper record of dir `name` (in the root) of active
   * snapshot `key`, as a damaged or hostile store would hold it when opened. The dir is found in
   * the layer, not by a walk: a walk would keep the dir's node, which only changes through the
   * overlay.
   */
  async function craftRedirect(store: Store, key: string, name: string, redirect: string): Promise<void> {
    const rec = await store.db.get<SnapshotRecord>(snapshotKey(key))
    assert.ok(rec?.layer)
    const upper = new StoreLayer(rec.layer, store.db)
    const [ino] = (await upper.entry(ROOT_INO, name)) ?? [0]
    const path = `/${name}`
    const inode = await upper.inode(ino)
    assert.ok(inode, `${path} is in the upper layer`)
    const txn = store.db.txn()
    upper.putInode(txn, ino, { ...inode, redirect })
    await txn.commit()
  }

  // as the kernel: a malformed value is EINVAL, a '.' or '..' reached in the walk EACCES (test/redirect-kernel.test.ts)
  for (const [bad, code] of [['/../secret', 'EACCES'], ['..', 'EACCES'], ['/secret//x', 'EINVAL'], ['/secret/', 'EINVAL'], ['/', 'EINVAL'], ['', 'EINVAL'], ['a/b', 'EINVAL'], ['.', 'EACCES'], ['/./secret', 'EACCES']] as const) {
    test(`a crafted redirect '${bad}' fails the lookup (${code}) and shows nothing`, () => withStore(async (store) => {
      await layer(store, 'base', undefined, async (fs) => {
        await fs.mkdir('/secret')
        await fs.writeFile('/secret/data', 'hidden')
      })
      const fs = await active(store, 'a', 'base')
      await fs.mkdir('/e')
      await craftRedirect(store, 'a', 'e', bad)
      const err = await rejectsWith(fs.readdir('/e'), code, '/e')
      assert.match(err.message, /redirect/)
      await rejectsWith(fs.readFile('/e/data'), code, '/e')
      await rejectsWith(store.commit('top', 'a'), 'EINVAL')
      assert.equal((await store.stat('a')).kind, 'active')
    }))
  }

  test("'nofollow' refuses to follow an existing redirect (EPERM, as the kernel)", () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/d')
      await fs.writeFile('/d/f', 'f')
    })
    await store.prepare('a', 'base')
    await store.fs('a', { redirectDir: 'on' }).rename('/d', '/e')
    assert.deepEqual(await store.fs('a').readdir('/e'), ['f'])
    for (const policy of ['nofollow', 'off'] as const) {
      const fs = store.fs('a', { redirectDir: policy })
      await rejectsWith(fs.readdir('/e'), 'EPERM', '/e')
      await rejectsWith(fs.readFile('/e/f'), 'EPERM', '/e')
      await rejectsWith(fs.stat('/d'), 'ENOENT', '/d')
      assert.deepEqual(await fs.readdir('/'), ['e'])
    }
    assert.deepEqual(await store.fs('a', { redirectDir: 'follow' }).readdir('/e'), ['f'])
  }))
})

describe('permissions', () => {
  const user = { uid: 1000, gid: 1000 }
  const other = { uid: 2000, gid: 2000 }

  test('a non-root caller cannot write a 0644 root file', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.writeFile('/f', 'root', { mode: 0o644 }) })
    await store.prepare('a', 'base')
    const fs = store.fs('a', { creds: user })
    await rejectsWith(fs.writeFile('/f', 'user'), 'EACCES', '/f')
    await rejectsWith(fs.open('/f', 'r+'), 'EACCES', '/f')
    assert.equal(await fs.readFile('/f', 'utf8'), 'root')
  }))

  test('creating needs write and search permission on the dir', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.mkdir('/nowrite', 0o555)
    await fs.mkdir('/nosearch', 0o766)
    const u = store.fs('a', { creds: user })
    await rejectsWith(u.writeFile('/nowrite/f', 'x'), 'EACCES', '/nowrite/f')
    await rejectsWith(u.mkdir('/nowrite/d'), 'EACCES', '/nowrite/d')
    await rejectsWith(u.writeFile('/nosearch/f', 'x'), 'EACCES', '/nosearch/f')
    await rejectsWith(u.writeFile('/f', 'x'), 'EACCES', '/f')
    assert.deepEqual(await fs.readdir('/nowrite'), [])
  }))

  test('every path component needs search permission', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.mkdir('/locked/inner', { recursive: true })
      await fs.writeFile('/locked/inner/f', 'x', { mode: 0o644 })
      await fs.chmod('/locked', 0o700)
    })
    await store.prepare('a', 'base')
    const u = store.fs('a', { creds: user })
    await rejectsWith(u.stat('/locked/inner/f'), 'EACCES', '/locked/inner/f')
    await rejectsWith(u.readFile('/locked/inner/f'), 'EACCES', '/locked/inner/f')
    await rejectsWith(u.readdir('/locked'), 'EACCES', '/locked')
    assert.ok((await u.stat('/locked')).isDirectory())
  }))

  test('in a sticky dir only the owner of the entry or of the dir removes it', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.mkdir('/tmp', 0o1777)
    await fs.chmod('/tmp', 0o1777)
    const u = store.fs('a', { creds: user })
    const o = store.fs('a', { creds: other })
    await u.writeFile('/tmp/mine', 'm')
    await u.mkdir('/tmp/mydir')
    await rejectsWith(o.unlink('/tmp/mine'), 'EPERM', '/tmp/mine')
    await rejectsWith(o.rmdir('/tmp/mydir'), 'EPERM', '/tmp/mydir')
    await rejectsWith(o.rename('/tmp/mine', '/tmp/stolen'), 'EPERM', '/tmp/mine')
    await u.unlink('/tmp/mine')
    await fs.rmdir('/tmp/mydir')
    assert.deepEqual(await fs.readdir('/tmp'), [])
  }))

  test("moving a dir to another parent needs write access to the dir (its '..' changes)", () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.mkdir('/pub', 0o777)
    await fs.mkdir('/pub/rootdir', 0o755)
    await fs.mkdir('/pub/other', 0o777)
    const u = store.fs('a', { creds: user })
    await u.mkdir('/pub/mine')
    await rejectsWith(u.rename('/pub/rootdir', '/pub/other/rootdir'), 'EACCES', '/pub/rootdir')
    await fs.mkdir('/pub/other/target', 0o755)
    await rejectsWith(u.rename('/pub/mine', '/pub/other/target', RENAME_EXCHANGE), 'EACCES', '/pub/other/target')
    // within the same parent '..' stays, so the dir's own mode does not matter
    await u.rename('/pub/rootdir', '/pub/renamed')
    await u.rename('/pub/mine', '/pub/other/mine')
    assert.deepEqual(sorted(await fs.readdir('/pub')), ['other', 'renamed'])
    assert.deepEqual(sorted(await fs.readdir('/pub/other')), ['mine', 'target'])
  }))

  test('chmod by a non-owner and chown by non-root are refused', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.writeFile('/rootfile', 'r', { mode: 0o666 })
    await fs.mkdir('/home', 0o777)
    const u = store.fs('a', { creds: { uid: 1000, gid: 1000, groups: [50] } })
    await rejectsWith(u.chmod('/rootfile', 0o777), 'EPERM', '/rootfile')
    await rejectsWith(u.chown('/rootfile', 1000, 1000), 'EPERM', '/rootfile')
    await u.writeFile('/home/mine', 'm')
    await rejectsWith(u.chown('/home/mine', 2000, 1000), 'EPERM', '/home/mine')
    await rejectsWith(u.chown('/home/mine', 1000, 60), 'EPERM', '/home/mine')
    await u.chown('/home/mine', 1000, 50) // to a group of its own
    assert.equal((await fs.stat('/home/mine')).gid, 50)
    await u.chmod('/home/mine', 0o600)
    assert.equal((await fs.stat('/home/mine')).mode & 0o7777, 0o600)
    assert.equal((await fs.stat('/rootfile')).mode & 0o7777, 0o666)
  }))

  test('chown to -1, -1 changes nothing but ctime and setuid, as the kernel', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.writeFile('/plain', 'p', { mode: 0o666 })
    await fs.writeFile('/suid', 's')
    await fs.chmod('/suid', 0o4777)
    await fs.writeFile('/rootsuid', 's')
    await fs.chmod('/rootsuid', 0o4755)
    const u = store.fs('a', { creds: user })
    await u.chown('/plain', -1, -1) // no change asked: allowed to anyone
    // dropping setuid is a mode change, which only the owner may make
    await rejectsWith(u.chown('/suid', -1, -1), 'EPERM', '/suid')
    assert.equal((await fs.stat('/suid')).mode & 0o7777, 0o4777)
    await fs.chown('/rootsuid', -1, -1)
    assert.equal((await fs.stat('/rootsuid')).mode & 0o7777, 0o755)
  }))

  test('link by a non-owner: only a plain regular file it can read and write (protected_hardlinks)', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.mkdir('/pub', 0o777)
    await fs.writeFile('/pub/rw', 'x', { mode: 0o666 })
    await fs.writeFile('/pub/ro', 'x', { mode: 0o644 })
    await fs.writeFile('/pub/suid', 'x', { mode: 0o666 })
    await fs.chmod('/pub/suid', 0o4666)
    await fs.writeFile('/pub/sgidexec', 'x', { mode: 0o676 })
    await fs.chmod('/pub/sgidexec', 0o2676)
    await fs.mknod('/pub/fifo', 0o010666)
    const u = store.fs('a', { creds: user })
    await u.link('/pub/rw', '/pub/rw-link')
    assert.equal((await fs.stat('/pub/rw')).nlink, 2)
    for (const name of ['ro', 'suid', 'sgidexec', 'fifo']) await rejectsWith(u.link(`/pub/${name}`, `/pub/${name}-link`), 'EPERM', `/pub/${name}`)
    await u.writeFile('/pub/own', 'x', { mode: 0o400 })
    await u.link('/pub/own', '/pub/own-link') // the owner links whatever it likes
  }))

  test('a setgid dir passes on its group, and setgid to its subdirs', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.mkdir('/shared', 0o777)
    await fs.chown('/shared', 0, 500)
    await fs.chmod('/shared', 0o2777)
    const u = store.fs('a', { creds: user })
    await u.writeFile('/shared/f', 'f')
    await u.mkdir('/shared/sub')
    const f = await fs.stat('/shared/f')
    const sub = await fs.stat('/shared/sub')
    assert.equal(f.gid, 500)
    assert.equal(f.uid, 1000)
    assert.equal(sub.gid, 500)
    assert.equal(sub.mode & 0o2000, 0o2000)
    assert.equal(f.mode & 0o2000, 0)
  }))

  test('setuid is cleared on a write by non-root and on chown', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => {
      await fs.writeFile('/prog', 'binary')
      await fs.chown('/prog', 1000, 1000)
      await fs.chmod('/prog', 0o4777)
      await fs.writeFile('/prog2', 'binary')
      await fs.chmod('/prog2', 0o4755)
    })
    await store.prepare('a', 'base')
    const fs = store.fs('a')
    const u = store.fs('a', { creds: user })
    assert.equal((await fs.stat('/prog')).mode & 0o7777, 0o4777)
    await u.appendFile('/prog', ' patched')
    assert.equal((await fs.stat('/prog')).mode & 0o7777, 0o777)
    await fs.writeFile('/prog2', 'root writes keep it')
    assert.equal((await fs.stat('/prog2')).mode & 0o7777, 0o4755)
    await fs.chown('/prog2', 5, 5)
    assert.equal((await fs.stat('/prog2')).mode & 0o7777, 0o755)
  }))

  test('utimes: explicit times need ownership, "now" needs write access', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.writeFile('/shared', 's', { mode: 0o666 })
    await fs.chmod('/shared', 0o666)
    await fs.writeFile('/private', 'p', { mode: 0o644 })
    await fs.mkdir('/home', 0o777)
    const u = store.fs('a', { creds: user })
    await rejectsWith(u.utimes('/shared', 1000, 1000), 'EPERM', '/shared')
    await u.utimes('/shared', null, null)
    await rejectsWith(u.utimes('/private', null, null), 'EACCES', '/private')
    await u.writeFile('/home/mine', 'm')
    await u.utimes('/home/mine', 1000, 2000)
    const st = await fs.stat('/home/mine')
    assert.equal(st.atimeMs, 1000_000)
    assert.equal(st.mtimeMs, 2000_000)
  }))

  test('trusted.* xattrs need root; user.* on a symlink is EPERM', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.writeFile('/f', 'f', { mode: 0o666 })
    await fs.chmod('/f', 0o666)
    await fs.symlink('/f', '/link')
    const u = store.fs('a', { creds: user })
    await rejectsWith(u.setxattr('/f', 'trusted.x', 'v'), 'EPERM', '/f')
    await fs.setxattr('/f', 'trusted.x', 'v')
    assert.equal((await fs.getxattr('/f', 'trusted.x')).toString(), 'v')
    await rejectsWith(u.getxattr('/f', 'trusted.x'), 'ENODATA', '/f')
    assert.deepEqual(await u.listxattr('/f'), [])
    await u.setxattr('/f', 'user.ok', 'fine')
    assert.deepEqual(sorted(await fs.listxattr('/f')), ['trusted.x', 'user.ok'])
    await rejectsWith(fs.setxattr('/link', 'user.x', 'v', 0, { follow: false }), 'EPERM', '/link')
    await rejectsWith(u.setxattr('/link', 'user.x', 'v', 0, { follow: false }), 'EPERM', '/link')
  }))

  test('findxattr answers undefined wherever getxattr fails with ENODATA, and fails as it does otherwise', () => withStore(async (store) => {
    const fs = await active(store, 'a')
    await fs.writeFile('/f', 'f')
    await fs.chmod('/f', 0o600)
    await fs.symlink('/f', '/link')
    await fs.setxattr('/f', 'trusted.x', 'root only')
    await fs.setxattr('/f', 'user.y', 'y')
    const u = store.fs('a', { creds: user })
    const h = await fs.open('/f', 'r')
    const cases: Array<[SnapshotFs, string, string, { follow?: boolean }]> = [
      [fs, '/f', 'user.y', {}], [fs, '/f', 'user.none', {}], [fs, '/f', 'security.capability', {}],
      [u, '/f', 'trusted.x', {}], [fs, '/link', 'user.y', { follow: false }], [fs, '/link', 'user.y', {}],
      [fs, '/f', 'trusted.x', {}],
    ]
    for (const [who, path, name, opts] of cases) {
      const found = await who.findxattr(path, name, opts)
      const got = await who.getxattr(path, name, opts).catch((err: { code?: string }) => err.code)
      assert.deepEqual(found?.toString() ?? 'ENODATA', Buffer.isBuffer(got) ? got.toString() : got, `${name} of ${path}`)
    }
    assert.equal((await h.findxattr('user.y'))?.toString(), 'y')
    assert.equal(await h.findxattr('security.capability'), undefined)
    assert.equal(await h.findxattr('trusted.x', { uid: 1000, gid: 1000 }), undefined, 'hidden from others')
    // failures other than a missing xattr stay failures
    await rejectsWith(u.findxattr('/f', 'user.y'), 'EACCES', '/f')
    await rejectsWith(fs.findxattr('/f', 'bogus.name'), 'ENOTSUP', '/f')
    await rejectsWith(fs.findxattr('/missing', 'user.y'), 'ENOENT', '/missing')
    await h.close()
    await rejectsWith(h.findxattr('user.y'), 'EBADF', '/f')
  }))
})

describe('open(2) of a directory', () => {
  test('read-only opens succeed and reads fail with EISDIR; writes and O_CREAT give EISDIR', () => withStore(async (store) => {
    await layer(store, 'base', undefined, async (fs) => { await fs.mkdir('/d') })
    const fs = await active(store, 'work', 'base')
    const h = await fs.open('/d', 'r')
    assert.ok((await h.stat()).isDirectory())
    await rejectsWith(h.read(Buffer.alloc(10), 0, 10, 0), 'EISDIR', '/d')
    await h.close()
    await rejectsWith(fs.open('/d', 'r+'), 'EISDIR', '/d')
    await rejectsWith(fs.open('/d', constants.O_RDONLY | constants.O_CREAT), 'EISDIR', '/d')
    await rejectsWith(fs.open('/d', constants.O_RDONLY | constants.O_TRUNC), 'EISDIR', '/d')
  }))
})
