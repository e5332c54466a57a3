import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createServer } from 'node:net'
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, readFile, readlink, rm, symlink, unlink, writeFile, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { getAttribute, listAttributes, setAttribute } from 'fs-xattr'
import type { DiffEntry, Store } from '../engine/index.js'
import type { IndexLowerNode } from '../engine/store/mergeindex.js'
import type { LowerTree } from '../engine/overlay/node.js'
import { CHUNK_SIZE } from '../engine/store/chunks.js'
import { countChunks, dumpDb, patternBytes, rejectsWith, withStore, withTempDir } from './helpers.js'

const isRoot = process.getuid?.() === 0
const NEEDS_ROOT = 'needs root: device nodes, other owners and trusted.* xattrs'

// ---- building host trees ----

function mknod(path: string, ...spec: string[]): void {
  execFileSync('mknod', ['--', path, ...spec])
}

/** A socket file that outlives its server: closing the server removes only the bound name. */
async function makeSocket(path: string): Promise<void> {
  const bound = `${path}.bound`
  const server = createServer()
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(bound, ok) })
  await link(bound, path)
  await new Promise<void>((ok) => server.close(() => ok()))
  await rm(bound, { force: true })
}

const NOW_S = Math.floor(Date.now() / 1000)
let tick = 0
/**
 * Distinct times for every entry. The atime lies ahead of the ctime that setting it gives, so
 * that reading the file (relatime) leaves it alone and both trees can be compared exactly.
 */
async function stampTimes(...paths: string[]): Promise<void> {
  for (const p of paths) {
    tick++
    await lutimes(p, NOW_S + 7200 + tick + 0.25, NOW_S - 86400 + tick * 3.000123)
  }
}

async function xattrsWork(dir: string): Promise<boolean> {
  const probe = join(dir, '.xattr-probe')
  await writeFile(probe, '')
  try {
    await setAttribute(probe, 'user.probe', 'x')
    return true
  } catch {
    return false
  } finally {
    await rm(probe)
  }
}

const SPARSE_SIZE = 10 * 1024 * 1024
const ISLANDS: Array<[number, number]> = [[0, 4096], [4 * 1024 * 1024 + 100, 5000], [SPARSE_SIZE - 10, 10]]

async function writeSparse(path: string): Promise<void> {
  const h = await open(path, 'w')
  for (const [i, [at, len]] of ISLANDS.entries()) await h.write(patternBytes(len, 100 + i), 0, len, at)
  await h.truncate(SPARSE_SIZE)
  await h.close()
}

/** 5 chunks A B A A C and a short tail: 4 distinct chunks stored. */
function dupContent(): Buffer {
  const [a, b, c] = [patternBytes(CHUNK_SIZE, 1), patternBytes(CHUNK_SIZE, 2), patternBytes(CHUNK_SIZE, 3)]
  return Buffer.concat([a, b, a, a, c, patternBytes(1000, 4)])
}

/** Chunks the base tree needs: one per sparse island, and the 4 distinct chunks of /dup. */
const BASE_CHUNKS = ISLANDS.length + 4

interface Env {
  privileged: boolean
  xattrs: boolean
}

/** Every file type, special mode bits, owners, hard links, xattrs, holes and repeated chunks. */
async function buildTree(src: string, env: Env): Promise<void> {
  const p = (rel: string): string => join(src, rel)
  for (const d of ['docs', 'docs/deep', 'docs/deep/er', 'empty-dir', 'sticky', 'setgid', 'bin']) await mkdir(p(d))
  await chmod(p('sticky'), 0o1777)
  await chmod(p('setgid'), 0o2775)
  await chmod(src, 0o755)
  await writeFile(p('docs/readme.txt'), 'read me\n')
  await link(p('docs/readme.txt'), p('hard-a'))
  await link(p('docs/readme.txt'), p('docs/deep/hard-b'))
  await writeFile(p('docs/deep/er/leaf'), 'leaf')
  await writeFile(p('empty'), '')
  await writeFile(p('bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 })
  await chmod(p('bin/tool'), 0o4755)
  await writeFile(p('bin/sg'), 'sg')
  await chmod(p('bin/sg'), 0o2755)
  await writeFile(p('owned'), 'owned by someone')
  await chmod(p('owned'), 0o640)
  await symlink('docs/readme.txt', p('link-rel'))
  await symlink('/nonexistent/target', p('link-dangling'))
  mknod(p('pipe'), 'p')
  await chmod(p('pipe'), 0o620)
  await makeSocket(p('sock'))
  await writeSparse(p('sparse'))
  await writeFile(p('dup'), dupContent())
  if (env.xattrs) {
    await setAttribute(p('docs/readme.txt'), 'user.comment', 'hello')
    await setAttribute(p('docs'), 'user.dir', Buffer.from([0, 1, 2, 255]))
  }
  if (env.privileged) {
    mknod(p('dev-null'), 'c', '1', '3')
    mknod(p('dev-loop'), 'b', '7', '0')
    await chmod(p('dev-null'), 0o666)
    await lchown(p('bin/sg'), 0, 5)
    await chmod(p('bin/sg'), 0o2755) // chown cleared it
    await lchown(p('owned'), 1234, 5678)
    await lchown(p('link-rel'), 42, 43)
    await lchown(p('setgid'), 0, 100)
    await chmod(p('setgid'), 0o2775)
    await setAttribute(p('bin/tool'), 'trusted.secret', 'root only')
    await setAttribute(p('pipe'), 'trusted.note', 'on a fifo')
  }
  await stampAll(src)
}

/** Sets times on everything, children before their dir. */
async function stampAll(dir: string): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name)
    if ((await lstat(path)).isDirectory()) await stampAll(path)
    else await stampTimes(path)
  }
  await stampTimes(dir)
}

// ---- comparing host trees ----

interface EntryDesc {
  type: string
  mode: number
  uid: number
  gid: number
  nlink: number
  rdev: number
  mtimeNs: string
  atimeNs: string
  size?: number
  target?: string
  sha256?: string
  xattrs?: Record<string, string>
  /** For an inode with several names: the first of them. */
  sameAs?: string
}

const typeName = (mode: number): string => ({ 1: 'fifo', 2: 'chr', 4: 'dir', 6: 'blk', 8: 'file', 10: 'symlink', 12: 'socket' } as Record<number, string>)[mode >> 12] ?? 'unknown'

/** Everything observable about a host tree, by path from its root. */
async function describeTree(root: string): Promise<Record<string, EntryDesc>> {
  const out: Record<string, EntryDesc> = {}
  const firstName = new Map<bigint, string>()
  const walk = async (rel: string): Promise<void> => {
    const abs = join(root, rel)
    const st = await lstat(abs, { bigint: true })
    const d: EntryDesc = {
      type: typeName(Number(st.mode)), mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink),
      rdev: Number(st.rdev), mtimeNs: String(st.mtimeNs), atimeNs: String(st.atimeNs),
    }
    if (!st.isDirectory()) {
      d.size = Number(st.size)
      if (st.nlink > 1n) {
        d.sameAs = firstName.get(st.ino) ?? rel
        firstName.set(st.ino, d.sameAs)
      }
    }
    if (st.isSymbolicLink()) d.target = await readlink(abs)
    else {
      const xattrs: Record<string, string> = {}
      for (const n of (await listAttributes(abs)).sort()) xattrs[n] = (await getAttribute(abs, n)).toString('hex')
      d.xattrs = xattrs
    }
    if (st.isFile()) d.sha256 = createHash('sha256').update(await readFile(abs)).digest('hex')
    out[rel === '' ? '/' : rel] = d
    if (st.isDirectory()) for (const name of (await readdir(abs)).sort()) await walk(rel === '' ? name : `${rel}/${name}`)
  }
  await walk('')
  return out
}

/** The entry of a path in a committed snapshot's merged index. */
async function indexEntry(tree: LowerTree, path: string): Promise<IndexLowerNode> {
  let cur = tree.root
  for (const name of path.split('/').filter(Boolean)) {
    const next = await tree.lookup(cur, name)
    assert.ok(next, `${path} is in the snapshot`)
    cur = next
  }
  return cur as IndexLowerNode
}

const lines = (d: DiffEntry[]): string[] => d.map((e) => `${e.kind[0].toUpperCase()} ${e.path}`)

const withTemp = <T>(fn: (dir: string) => Promise<T>): Promise<T> => withTempDir('strata-roundtrip-', fn)

describe('snapshotDir and checkout', () => {
  test('a host tree comes back exactly, and a changed tree is stored as its changes only', async (t) => {
    if (!isRoot) t.diagnostic(`parts skipped: ${NEEDS_ROOT}`)
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(src)
      const env: Env = { privileged: isRoot, xattrs: await xattrsWork(tmp) }
      if (!env.xattrs) t.diagnostic('parts skipped: the temp filesystem has no user xattrs')
      await buildTree(src, env)
      const original = await describeTree(src)

      await withStore(async (store) => {
        const reports: Array<[number, number | undefined]> = []
        await store.snapshotDir(src, { name: 'base', labels: { from: 'host' }, progress: (done, total) => { reports.push([done, total]) } })
        // file data, each inode once whatever its number of names
        const fileBytes = Object.entries(original).reduce((n, [path, d]) => n + (d.type === 'file' && (d.sameAs ?? path) === path ? d.size! : 0), 0)
        assert.deepEqual(reports.at(-1), [fileBytes, fileBytes], 'progress ends at the total of file bytes')
        assert.ok(reports.every(([d], i) => i === 0 || d >= reports[i - 1][0]), 'progress never goes back')
        assert.equal((await store.stat('base')).labels.from, 'host')
        assert.equal(await countChunks(store), BASE_CHUNKS, 'holes store nothing and repeated chunks are stored once')

        const out1 = join(tmp, 'out1')
        await store.checkout('base', out1)
        assert.deepEqual(await describeTree(out1), original)
        const sparse = await lstat(join(out1, 'sparse'))
        assert.ok(sparse.blocks * 512 <= (ISLANDS.length + 1) * CHUNK_SIZE, `holes stay holes: ${sparse.blocks} blocks`)

        // ---- change the host tree ----
        const p = (rel: string): string => join(src, rel)
        await writeFile(p('bin/tool'), '#!/bin/sh\necho tool v2\n')            // content, same inode
        await unlink(p('empty'))                                                 // file deleted
        await rm(p('docs/deep/er'), { recursive: true })                         // dir deleted
        await rmdir(p('empty-dir'))
        await writeFile(p('empty-dir'), 'was a dir')                             // dir -> file
        await unlink(p('owned'))
        await mkdir(p('owned'))
        await writeFile(p('owned/inside'), 'was a file')                        // file -> dir
        await mkdir(p('new'))
        await writeFile(p('new/one.txt'), 'one')                                 // added
        await writeFile(p('docs/new.txt'), 'new doc')
        await chmod(p('dup'), 0o600)                                             // attributes only
        await unlink(p('docs/deep/hard-b'))                                      // one name of three
        await link(p('sparse'), p('sparse-link'))                                // a second name
        await unlink(p('link-dangling'))
        await symlink('elsewhere', p('link-dangling'))                           // new target
        await stampTimes(p('bin/tool'), p('empty-dir'), p('owned/inside'), p('owned'), p('new/one.txt'), p('new'),
          p('docs/new.txt'), p('docs/deep'), p('docs'), p('link-dangling'), src)
        const changed = await describeTree(src)

        await store.snapshotDir(src, { name: 'child', parent: 'base' })
        const out2 = join(tmp, 'out2')
        await store.checkout('child', out2)
        assert.deepEqual(await describeTree(out2), changed, 'the child is the changed tree')
        const out3 = join(tmp, 'out3')
        await store.checkout('base', out3)
        assert.deepEqual(await describeTree(out3), original, 'the parent is still the original tree')

        // unchanged objects were neither read nor stored again: they still come from base's layer
        const baseLayer = (await store.record('base', 'test')).layer
        const childTree = await store.tree('child')
        const unchanged = ['bin/sg', 'docs/readme.txt', 'hard-a', 'link-rel', 'pipe', 'sock', ...(isRoot ? ['dev-null', 'dev-loop'] : [])]
        for (const u of unchanged) assert.equal((await indexEntry(childTree, u)).layer, baseLayer, `${u} is not in the child's layer`)
        // /dup changed mode only, and the new link copied /sparse up: new records over the same chunks
        const baseTree = await store.tree('base')
        for (const f of ['dup', 'sparse']) {
          const [inBase, inChild] = [await indexEntry(baseTree, f), await indexEntry(childTree, f)]
          assert.notEqual(inChild.layer, baseLayer)
          assert.deepEqual((await childTree.inode(inChild)).chunks, (await baseTree.inode(inBase)).chunks)
        }
        assert.equal(await countChunks(store), BASE_CHUNKS, 'no chunk was stored again')
        assert.ok((await store.usage('child')).size < CHUNK_SIZE, 'the child layer holds only the small new files')

        assert.deepEqual(lines(await store.diff('base', 'child')), [
          'M /bin/tool', 'M /docs', 'M /docs/deep', 'D /docs/deep/er', 'D /docs/deep/hard-b', 'A /docs/new.txt', 'M /dup',
          'D /empty', 'M /empty-dir', 'M /link-dangling', 'A /new', 'M /owned', 'A /sparse-link',
        ])

        // the same tree again: nothing to store
        await store.snapshotDir(src, { name: 'again', parent: 'child' })
        assert.deepEqual(await store.usage('again'), { size: 0, inodes: 0 })
        assert.deepEqual(await store.diff('child', 'again'), [])

        // a checked-out copy (new inodes, no stamps) edited in one file: compared by content, only that file is stored
        await writeFile(join(out2, 'docs/new.txt'), 'edited doc')
        await stampTimes(join(out2, 'docs/new.txt'))
        await store.snapshotDir(out2, { name: 'edited', parent: 'child' })
        assert.deepEqual(lines(await store.diff('child', 'edited')), ['M /docs/new.txt'])
        assert.equal((await store.usage('edited')).inodes, 2, 'the file and its dir')
        const out4 = join(tmp, 'out4')
        await store.checkout('edited', out4)
        assert.deepEqual(await describeTree(out4), await describeTree(out2))
      })
    })
  })

  test('devices, owners and trusted xattrs', { skip: !isRoot && NEEDS_ROOT }, async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(src)
      mknod(join(src, 'big-dev'), 'c', '4095', '1048575') // the largest numbers dev_t splits into
      await writeFile(join(src, 'f'), 'x')
      await lchown(join(src, 'f'), 4_000_000_000, 4_000_000_001)
      await chmod(join(src, 'f'), 0o6755)
      await setAttribute(join(src, 'f'), 'trusted.k', Buffer.alloc(300, 9))
      await stampAll(src)
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 's' })
        const st = await store.fs('s').lstat('/f')
        assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [4_000_000_000, 4_000_000_001, 0o6755])
        await store.checkout('s', join(tmp, 'out'))
        assert.deepEqual(await describeTree(join(tmp, 'out')), await describeTree(src))
      })
    })
  })

  test('times are kept to the nanosecond in the store, and written out to the microsecond', async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(src)
      await writeFile(join(src, 'f'), 'x') // times from the kernel, nanoseconds included
      const host = await lstat(join(src, 'f'), { bigint: true })
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 's' })
        const inStore = await store.fs('s').lstat('/f')
        assert.equal(inStore.mtimeNs, host.mtimeNs)
        await store.checkout('s', join(tmp, 'out'))
        const out = await lstat(join(tmp, 'out', 'f'), { bigint: true })
        assert.equal(out.mtimeNs, host.mtimeNs - (host.mtimeNs % 1000n))
        // importing the checked-out tree over its source finds nothing changed
        await store.snapshotDir(join(tmp, 'out'), { name: 's2', parent: 's' })
        assert.deepEqual(await store.usage('s2'), { size: 0, inodes: 0 })
      })
    })
  })

  test('bad input is refused before anything is done', async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(src)
      await writeFile(join(src, 'f'), 'x')
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 'base' })
        await store.prepare('active', 'base')
        const before = await dumpDb(store)
        const missing = join(tmp, 'missing')
        await rejectsWith(store.snapshotDir(missing, { name: 'n' }), 'ENOENT', missing)
        await rejectsWith(store.snapshotDir(join(src, 'f'), { name: 'n' }), 'ENOTDIR', join(src, 'f'))
        await rejectsWith(store.snapshotDir(src, { name: 'base' }), 'EEXIST', 'base')
        await rejectsWith(store.snapshotDir(src, { name: 'n', parent: 'nope' }), 'ENOENT', 'nope')
        await rejectsWith(store.snapshotDir(src, { name: 'n', parent: 'active' }), 'EINVAL', 'active')
        await rejectsWith(store.snapshotDir(src, { name: 'n', labels: { k: 1 as unknown as string } }), 'EINVAL', 'n')
        await rejectsWith(store.checkout('nope', join(tmp, 'o')), 'ENOENT', 'nope')
        await rejectsWith(store.checkout('base', src), 'ENOTEMPTY', src)
        await rejectsWith(store.checkout('base', join(src, 'f')), 'ENOTDIR', join(src, 'f'))
        assert.deepEqual(await dumpDb(store), before)
      })
    })
  })

  test('an import that fails part way leaves no snapshot behind', async () => {
    await withTemp(async (tmp) => {
      const src = join(tmp, 'src')
      await mkdir(src)
      for (let i = 0; i < 3; i++) await writeFile(join(src, `f${i}`), `file ${i}`)
      await withStore(async (store: Store) => {
        const keys = async (): Promise<string[]> => { const k: string[] = []; for await (const s of store.walk()) k.push(s.name); return k }
        const layers = async (): Promise<string[]> => { const k: string[] = []; for await (const key of store.db.scanKeys('L/')) k.push(key); return k }
        const fail = (): void => { throw new Error('stop here') }
        await assert.rejects(store.snapshotDir(src, { name: 'n', progress: fail }), /stop here/)
        assert.deepEqual(await keys(), [])
        assert.deepEqual(await layers(), [])
        await store.snapshotDir(src, { name: 'n' })
        assert.deepEqual(await keys(), ['n'])
      })
    })
  })
})
