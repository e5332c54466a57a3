import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { appendFileSync, mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { link, mkdir, rmdir, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { IndexLowerNode } from '../engine/store/mergeindex.js'
import { CHUNK_SIZE } from '../engine/store/chunks.js'
import { SmallFileReader } from '../engine/host/io.js'
import { countChunks, patternBytes, rejectsWith, withStore, withTempDir } from './helpers.js'

const withTemp = <T>(fn: (dir: string) => Promise<T>): Promise<T> => withTempDir('strata-import-', fn)

describe('snapshotDir in batches', () => {
  test('a tree of more files and data than one batch holds comes back whole', async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      const files = new Map<string, Buffer>()
      // 1,500 small files: more objects than a batch takes (1,024), so batches end inside dirs
      for (let d = 0; d < 3; d++) {
        mkdirSync(join(src, `d${d}`, 'inner'), { recursive: true })
        for (let f = 0; f < 500; f++) {
          const rel = `d${d}/${f % 7 === 0 ? 'inner/' : ''}f${f}`
          const size = (f * 7) % 3000
          const data = f % 11 === 0 ? Buffer.alloc(size) : patternBytes(size, d * 10_000 + f)
          writeFileSync(join(src, rel), data)
          files.set(rel, data)
        }
      }
      // 20 MiB of data with a 3 MiB hole and a 2 MiB hole at the end: more data than a batch takes
      const big = join(src, 'big')
      const head = randomBytes(8 * 1024 * 1024)
      const tail = randomBytes(9 * 1024 * 1024)
      writeFileSync(big, head)
      truncateSync(big, head.length + 3 * 1024 * 1024)
      appendFileSync(big, tail)
      truncateSync(big, 22 * 1024 * 1024)
      files.set('big', Buffer.concat([head, Buffer.alloc(3 * 1024 * 1024), tail, Buffer.alloc(2 * 1024 * 1024)]))
      symlinkSync('d0/f1', join(src, 'link'))

      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 's' })
        const sfs = store.fs('s')
        for (const [rel, data] of files) assert.ok((await sfs.readFile(`/${rel}`)).equals(data), `/${rel} has its content`)
        assert.equal(await sfs.readlink('/link'), 'd0/f1')
        assert.equal((await store.usage('s')).inodes, files.size + 7, 'a name for every file, dir and link, and nothing else')
        assert.equal(await countChunks(store), (8 + 9) * 1024 * 1024 / CHUNK_SIZE, 'small files inline, holes not stored')
        assert.deepEqual((await store.fsck()).problems, [])
      })
    })
  })

  test('removals through paths amid new files leave the dir they change right', async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(join(src, 'a', 'old'), { recursive: true })
      await mkdir(join(src, 'a', 'sub'))
      await mkdir(join(src, 'a', 'zdir'))
      await writeFile(join(src, 'a', 'x'), 'x')
      await writeFile(join(src, 'a', 'old', 'f'), 'f')
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 'base' })
        // The import removes a/old first (through paths, copying a up), makes a/y and a/new, then
        // removes the dir a/zdir (through paths) to make a file of two names there: hard-linked
        // files come after the others. a's record must follow every step.
        await unlink(join(src, 'a', 'old', 'f'))
        await rmdir(join(src, 'a', 'old'))
        await writeFile(join(src, 'a', 'y'), 'y')
        await mkdir(join(src, 'a', 'new'))
        await rmdir(join(src, 'a', 'zdir'))
        await writeFile(join(src, 'a', 'zdir'), 'now a file')
        await link(join(src, 'a', 'zdir'), join(src, 'a', 'zlink'))
        await store.snapshotDir(src, { name: 'child', parent: 'base' })
        const tree = await store.tree('child')
        const a = (await tree.lookup(tree.root, 'a')) as IndexLowerNode
        assert.equal(a.layer, (await store.record('child', 'test')).layer)
        // 2, plus a/sub and a/new: the removals are kept, not overwritten by a second copy-up of a
        // or by a record of a from before them
        assert.equal((await tree.inode(a)).nlink, 4)
        assert.deepEqual((await store.diff('base', 'child')).map((e) => `${e.kind} ${e.path}`),
          ['modified /a', 'added /a/new', 'deleted /a/old', 'added /a/y', 'modified /a/zdir', 'added /a/zlink'])
        assert.deepEqual((await store.fs('child').readdir('/a')).sort(), ['new', 'sub', 'x', 'y', 'zdir', 'zlink'])
        assert.equal((await store.fs('child').lstat('/a/zlink')).nlink, 2)
      })
    })
  })
})

describe('SmallFileReader', () => {
  test('reads whole files with blocking calls and through the thread pool alike', async () => {
    await withTemp(async (dir) => {
      await writeFile(join(dir, 'small'), 'hello')
      await writeFile(join(dir, 'empty'), '')
      await writeFile(join(dir, 'grew'), patternBytes(100_000, 3))
      symlinkSync('small', join(dir, 'link'))
      for (const slowNs of [0n, 10n ** 12n]) {
        const reader = new SmallFileReader(slowNs)
        await reader.read(join(dir, 'small'), 5) // with 0: slow, so what follows goes through the pool
        assert.equal((await reader.read(join(dir, 'small'), 5)).toString(), 'hello')
        assert.equal((await reader.read(join(dir, 'empty'), 0)).length, 0)
        assert.ok((await reader.read(join(dir, 'grew'), 10)).equals(patternBytes(100_000, 3)), 'read to its end')
        await rejectsWith(reader.read(join(dir, 'missing'), 1), 'ENOENT')
        await rejectsWith(reader.read(join(dir, 'link'), 5), 'ELOOP')
      }
    })
  })
})
