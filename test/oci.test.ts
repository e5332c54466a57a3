import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, readFile, writeFile, link, symlink, lutimes, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { createGunzip, createGzip } from 'node:zlib'
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream'
import { setAttribute } from 'fs-xattr'
import { Store } from '../engine/index.js'
import { countChunks, dumpDb, patternBytes, rejectsWith, withStore, withTempDir } from './helpers.js'

/**
 * OCI layer tars: export of a snapshot's changes (or whole tree) and import on a parent give
 * back the same tree, whiteouts, opaque dirs, renamed dirs and hard links included; hostile tars
 * are refused before the store changes at all.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const MiB = 1024 * 1024

// ---- describing snapshot trees ----

interface Desc {
  type: string
  mode: number
  uid: number
  gid: number
  rdev: number
  mtimeNs: string
  atimeNs: string
  nlink?: number
  size?: number
  target?: string
  sha256?: string
  xattrs: Record<string, string>
  /** For an inode with several names: the first of them, in walk order. */
  sameAs?: string
}

const typeName = (mode: number): string => ({ 1: 'fifo', 2: 'chr', 4: 'dir', 6: 'blk', 8: 'file', 10: 'symlink', 12: 'socket' } as Record<number, string>)[mode >> 12] ?? 'unknown'

/** Everything observable of a snapshot's tree but inode numbers and ctimes, hard-link groups by first name. */
async function describeSnap(store: Store, key: string): Promise<Record<string, Desc>> {
  const fs = store.fs(key)
  const out: Record<string, Desc> = {}
  const first = new Map<number, string>()
  const walk = async (path: string): Promise<void> => {
    const st = await fs.lstat(path)
    const d: Desc = { type: typeName(st.mode), mode: st.mode, uid: st.uid, gid: st.gid, rdev: st.rdev, mtimeNs: String(st.mtimeNs), atimeNs: String(st.atimeNs), xattrs: {} }
    for (const n of (await fs.listxattr(path, { follow: false })).sort()) d.xattrs[n] = (await fs.getxattr(path, n, { follow: false })).toString('hex')
    if (!st.isDirectory()) {
      d.size = st.size
      d.nlink = st.nlink
      if (st.nlink > 1) {
        d.sameAs = first.get(st.ino) ?? path
        first.set(st.ino, d.sameAs)
      }
    }
    if (st.isSymbolicLink()) d.target = await fs.readlink(path)
    if (st.isFile()) d.sha256 = createHash('sha256').update(await fs.readFile(path)).digest('hex')
    out[path] = d
    if (st.isDirectory()) for (const name of (await fs.readdir(path)).sort()) await walk(path === '/' ? `/${name}` : `${path}/${name}`)
  }
  await walk('/')
  return out
}

// ---- reading and writing tars in the tests ----

interface Member {
  name: string
  type: string
  linkname?: string
  size: number
  pax: Record<string, string>
}

async function listTar(path: string): Promise<Member[]> {
  const head = Buffer.alloc(2)
  const fh = await open(path, 'r')
  await fh.read(head, 0, 2, 0)
  await fh.close()
  const extract = tarExtract()
  const input = createReadStream(path)
  const feeding = (head[0] === 0x1f && head[1] === 0x8b ? pipeline(input, createGunzip(), extract) : pipeline(input, extract))
  const out: Member[] = []
  for await (const e of extract) {
    out.push({ name: e.header.name, type: e.header.type, linkname: e.header.linkname ?? undefined, size: e.header.size, pax: (e.header.pax ?? {}) as Record<string, string> })
    e.resume()
  }
  await feeding
  return out
}

type TarMember = Partial<Header> & { name: string; data?: string | Buffer }

/** A tar of `members`, as a hostile or hand-made layer would be. */
async function writeTar(path: string, members: TarMember[], gzip = false): Promise<string> {
  const pack = tarPack()
  const out = createWriteStream(path)
  const source = Readable.from(pack, { objectMode: false })
  const done = gzip ? pipeline(source, createGzip(), out) : pipeline(source, out)
  for (const { data, ...header } of members) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve())
      if ((header.type ?? 'file') === 'file') pack.entry(header, data ?? '', cb)
      else pack.entry(header, cb)
    })
  }
  pack.finalize()
  await done
  return path
}

const names = (members: Member[]): string[] => members.map((m) => m.name)

const run = (cmd: string, args: string[]): Promise<string> => new Promise((resolve, reject) => {
  execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr}`)) : resolve(stdout)))
})

// ---- the trees ----

const T0 = 1_700_000_000_000_000_000n
/** Distinct nanosecond times for each call. */
let tick = 0n
const stamp = async (store: Store, key: string, ...paths: string[]): Promise<void> => {
  const fs = store.fs(key)
  for (const p of paths) {
    tick++
    await fs.lutimes(p, T0 + tick * 7_000_000_123n + 5_000_000_000n, T0 + tick * 3_000_000_321n)
  }
}

/** Binary, not UTF-8: travels as a LIBARCHIVE.xattr record. */
const CAPABILITY = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x00, 0x00, 0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])

/** A base with every kind of object, and a child changing it in every way a layer can. */
async function buildBaseAndChild(store: Store): Promise<void> {
  await store.prepare('b')
  const b = store.fs('b')
  for (const d of ['/dir', '/keep', '/keep/sub', '/gone', '/opq', '/opq/sub', '/ren', '/ren/inner', '/sticky']) await b.mkdir(d, 0o755)
  await b.chmod('/sticky', 0o1777)
  await b.writeFile('/dir/small', 'small file\n')
  await b.writeFile('/dir/inline', patternBytes(4000, 1))
  await b.writeFile('/dir/medium', patternBytes(5000, 2))
  await b.writeFile('/dir/chunky', patternBytes(70 * 1024, 3))
  await b.writeFile('/big', patternBytes(Math.floor(1.5 * MiB), 4))
  const sparse = await b.open('/sparse', 'w')
  await sparse.write(patternBytes(1000, 5), 0, 1000, 2 * MiB + 17)
  await sparse.truncate(3 * MiB)
  await sparse.close()
  await b.writeFile('/keep/file', 'keep')
  await b.writeFile('/keep/sub/deep', 'deep')
  await b.writeFile('/gone/a', 'a')
  await b.writeFile('/gone/b', 'b')
  await b.writeFile('/del-file', 'deleted in the child')
  await b.writeFile('/opq/old1', 'old1')
  await b.writeFile('/opq/sub/old2', 'old2')
  await b.writeFile('/ren/inner/f', 'renamed with its dir')
  await b.writeFile('/ren/g', 'g')
  await b.symlink('dir/small', '/link')
  await b.symlink('/nowhere/at/all', '/dangling')
  await b.link('/dir/small', '/hard-a')
  await b.link('/dir/chunky', '/keep/hard-b')
  await b.mknod('/fifo', 0o010640)
  await b.mknod('/null', 0o020666, (1 << 8) | 3)
  await b.mknod('/bigdev', 0o060600, Number((4095n << 8n) | 0xffn | (0xfff00n << 12n))) // minor 1048575: over the ustar field
  await b.setxattr('/dir/small', 'user.comment', 'hello')
  await b.setxattr('/dir', 'user.dir', Buffer.from([0, 1, 2, 255]))
  await b.setxattr('/big', 'trusted.secret', 'root only')
  await b.setxattr('/keep/file', 'security.capability', CAPABILITY)
  await b.setxattr('/keep/file', 'user.empty', '')
  await b.lchown('/dir/medium', 1000, 100)
  await b.chmod('/dir/medium', 0o4755)
  await b.lchown('/keep/file', 4_000_000_000, 4_000_000_001)
  await b.lchown('/link', 42, 43)
  await b.writeFile(`/${'n'.repeat(255)}`, 'the longest name, deleted in the child')
  await b.writeFile('/dir/é-ü-名前', 'a name that is not ASCII')
  await b.writeFile(`/dir/${'long-component-'.repeat(8)}`, 'a member name over 100 bytes')
  await b.writeFile('/old', 'from before 1970')
  await b.lutimes('/old', -86400.5, -86400.25)
  await stamp(store, 'b', '/dir/small', '/dir/inline', '/dir/medium', '/dir/chunky', '/big', '/sparse', '/keep/file', '/link', '/fifo', '/null', '/dir', '/keep', '/')
  await store.commit('base', 'b')

  await store.prepare('c', 'base')
  const c = store.fs('c')
  const h = await c.open('/dir/inline', 'r+')
  await h.write(Buffer.from('changed'), 0, 7, 100)
  await h.close()
  await c.unlink('/del-file')
  await c.unlink(`/${'n'.repeat(255)}`)
  await c.writeFile('/dir/é-ü-名前', 'changed')
  await c.unlink('/gone/a')
  await c.unlink('/gone/b')
  await c.rmdir('/gone')
  // /opq: removed and made again, so opaque
  await c.unlink('/opq/sub/old2')
  await c.rmdir('/opq/sub')
  await c.unlink('/opq/old1')
  await c.rmdir('/opq')
  await c.mkdir('/opq', 0o750)
  await c.writeFile('/opq/new', 'new in the opaque dir')
  // /ren -> /renamed: a redirect in the layer
  await c.rename('/ren', '/renamed')
  await c.writeFile('/renamed/added', 'added after the rename')
  await c.link('/big', '/big-link') // a new name for a file of the parent
  await c.chmod('/hard-a', 0o600) // through one name of a parent's hard-linked file
  await c.unlink('/keep/file')
  await c.symlink('elsewhere', '/keep/file')
  await c.unlink('/keep/sub/deep')
  await c.rmdir('/keep/sub')
  await c.writeFile('/keep/sub', 'a dir became a file')
  await c.writeFile('/dir/newfile', 'new')
  await c.setxattr('/dir/chunky', 'user.new', 'x')
  await c.mknod('/fifo2', 0o010600)
  await c.writeFile('/copy-of-big', patternBytes(Math.floor(1.5 * MiB), 4)) // same chunks as /big
  await c.mkdir('/sticky/inner', 0o700)
  await stamp(store, 'c', '/dir/inline', '/opq/new', '/opq', '/renamed/added', '/renamed', '/keep/file', '/keep/sub', '/dir/newfile', '/dir', '/keep', '/sticky/inner', '/sticky', '/')
  await store.commit('child', 'c')
}

const layerTar = (dir: string, name: string): string => join(dir, name)

describe('OCI layer export and import', () => {
  test('a child exported as a layer and imported on the same parent is the same tree', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await buildBaseAndChild(store)
      const tar = layerTar(tmp, 'child.tar')
      assert.deepEqual(await store.exportLayer('child', tar, { format: 'oci' }), { format: 'oci', path: tar })

      const members = await listTar(tar)
      const byName = new Map(members.map((m) => [m.name, m]))
      for (const n of ['.wh.del-file', `.wh.${'n'.repeat(255)}`, 'dir/é-ü-名前', '.wh.gone', 'opq/', 'opq/.wh..wh..opq', 'opq/new', '.wh.ren', 'renamed/', 'renamed/inner/', 'renamed/inner/f', 'renamed/g', 'renamed/added', 'keep/sub']) {
        assert.ok(byName.has(n), `the layer has ${n}: ${names(members).join(' ')}`)
      }
      assert.ok(!byName.has('opq/old1') && !byName.has('dir/medium') && !byName.has('keep/.wh.sub'), 'what did not change is not in the layer')
      // a file replacing a dir hides it without a whiteout
      assert.equal(byName.get('keep/sub')?.type, 'file')
      // the new name of a parent's file, and the other names of files changed through one name, are links
      const links = members.filter((m) => m.type === 'link').map((m) => [m.name, m.linkname].sort().join(' = '))
      assert.deepEqual(links.sort(), ['big = big-link', 'dir/chunky = keep/hard-b', 'dir/small = hard-a'])
      assert.equal(byName.get('keep/file')?.type, 'symlink')
      assert.equal(byName.get('keep/file')?.linkname, 'elsewhere')
      assert.equal(byName.get('fifo2')?.type, 'fifo')
      assert.equal(byName.get('dir/chunky')?.pax['SCHILY.xattr.user.new'], 'x')
      // whiteouts come before their siblings
      assert.ok(names(members).indexOf('.wh.del-file') < names(members).indexOf('big-link'))

      const chunks = await countChunks(store)
      const info = await store.importLayer(tar, { format: 'oci', name: 'child2', parent: 'base', labels: { from: 'tar' } })
      assert.deepEqual([info.name, info.kind, info.parent, info.labels], ['child2', 'committed', 'base', { from: 'tar' }])
      assert.equal(await countChunks(store), chunks, 'every chunk of the layer was in the store already')
      assert.deepEqual(await describeSnap(store, 'child2'), await describeSnap(store, 'child'))
      assert.deepEqual(await store.diff('child', 'child2'), [])
      assert.deepEqual(await describeSnap(store, 'base'), await describeSnap(store, 'base'))

      // the imported layer records the same changes: exported again, it has the same members
      const again = layerTar(tmp, 'again.tar')
      await store.exportLayer('child2', again, { format: 'oci' })
      assert.deepEqual(names(await listTar(again)).sort(), names(members).sort())
    })
  }))

  test('a flattened export is the whole tree, and imports on the empty tree as the same tree', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await buildBaseAndChild(store)
      const tar = layerTar(tmp, 'flat.tar')
      const reports: Array<[number, number | undefined]> = []
      await store.exportLayer('child', tar, { format: 'oci', flatten: true, progress: (done, total) => { reports.push([done, total]) } })
      assert.ok(reports.length > 0 && reports.every(([d], i) => i === 0 || d >= reports[i - 1][0]), 'progress counts up')
      const members = await listTar(tar)
      assert.equal(members[0].name, './')
      assert.ok(!members.some((m) => m.name.includes('.wh.')), 'no whiteouts in a flat layer')
      assert.ok(members.some((m) => m.name === 'opq/old1') === false && members.some((m) => m.name === 'keep/hard-b'))

      const imported: Array<[number, number | undefined]> = []
      await store.importLayer(tar, { format: 'oci', name: 'flat', progress: (done, total) => { imported.push([done, total]) } })
      const size = (await open(tar, 'r').then(async (h) => { const s = await h.stat(); await h.close(); return s.size }))
      assert.deepEqual(imported.at(-1), [2 * size, 2 * size], 'progress ends at both readings of the tar')
      assert.deepEqual(await describeSnap(store, 'flat'), await describeSnap(store, 'child'))
      assert.deepEqual(await store.diff('child', 'flat'), [])
    })
  }))

  test('gzip-compressed layers are written by name and read by their magic bytes', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await buildBaseAndChild(store)
      for (const name of ['child.tar.gz', 'child.tgz']) {
        const tar = layerTar(tmp, name)
        await store.exportLayer('child', tar, { format: 'oci' })
        const head = (await readFile(tar)).subarray(0, 2)
        assert.deepEqual([...head], [0x1f, 0x8b], `${name} is gzip`)
      }
      // a gzip layer under a name that does not say so is still read as one
      const plain = layerTar(tmp, 'layer')
      await writeFile(plain, await readFile(layerTar(tmp, 'child.tgz')))
      await store.importLayer(plain, { format: 'oci', name: 'gz', parent: 'base' })
      assert.deepEqual(await describeSnap(store, 'gz'), await describeSnap(store, 'child'))
    })
  }))

  test('a name that readers would take for a whiteout is refused on export', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await store.prepare('w')
      await store.fs('w').mkdir('/d')
      await store.fs('w').writeFile('/d/.wh.x', 'not a whiteout')
      await store.commit('s', 'w')
      await rejectsWith(store.exportLayer('s', join(tmp, 's.tar'), { format: 'oci' }), 'EINVAL', '/d/.wh.x')
      assert.deepEqual(await readdir(tmp), [], 'no tar, not even a partial one')
    })
  }))

  test('a full disk fails the export with the cause, and leaves no partial tar', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to mount a small tmpfs')
    await withTempDir('strata-oci-', async (tmp) => {
      const small = join(tmp, 'small')
      await mkdir(small)
      await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small])
      try {
        await withStore(async (store) => {
          await store.prepare('w')
          await store.fs('w').writeFile('/big', patternBytes(2 * MiB, 1))
          await store.commit('s', 'w')
          for (const name of ['s.tar', 's.tar.gz']) {
            const err = await rejectsWith(store.exportLayer('s', join(small, name), { format: 'oci' }), 'ENOSPC')
            assert.match(err.message, /ENOSPC|no space/i)
            assert.deepEqual(await readdir(small), [])
          }
        })
      } finally {
        await run('umount', [small])
      }
    })
  })

  test('a view exports no changes; an active snapshot exports what it holds now', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await store.prepare('w')
      await store.fs('w').writeFile('/f', 'f')
      await store.commit('base', 'w')
      await store.view('v', 'base')
      await store.exportLayer('v', layerTar(tmp, 'v.tar'), { format: 'oci' })
      assert.deepEqual(await listTar(layerTar(tmp, 'v.tar')), [])
      await store.prepare('act', 'base')
      const h = await store.fs('act').open('/open-file', 'w')
      await h.write(Buffer.from('not yet closed'), 0, 14, 0)
      await store.exportLayer('act', layerTar(tmp, 'act.tar'), { format: 'oci' })
      await h.close()
      const members = await listTar(layerTar(tmp, 'act.tar'))
      assert.deepEqual(members.filter((m) => m.name === 'open-file').map((m) => m.size), [14])
    })
  }))
})

describe('OCI layer semantics on import', () => {
  /** base: /x/{a,b} /y/{c, sub/d} /z (file) /w/{k} /keep */
  async function base(store: Store): Promise<void> {
    await store.prepare('b')
    const fs = store.fs('b')
    for (const d of ['/x', '/y', '/y/sub', '/w']) await fs.mkdir(d, 0o755)
    for (const f of ['/x/a', '/x/b', '/y/c', '/y/sub/d', '/z', '/w/k', '/keep']) await fs.writeFile(f, f)
    await fs.symlink('/etc', '/etc-link')
    await store.commit('base', 'b')
  }

  test('whiteouts, opaque markers, replacements and missing parents', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await base(store)
      const tar = await writeTar(join(tmp, 'l.tar'), [
        { name: 'x/.wh.a' },                                            // removes the parent's x/a
        { name: 'y/', type: 'directory', mode: 0o700, uid: 5, gid: 6 },
        { name: 'y/.wh..wh..opq' },                                     // hides y/c and y/sub
        { name: 'y/n', data: 'new in y' },
        { name: 'q', data: 'made here' },
        { name: '.wh.q' },                                              // q is this layer's: stays
        { name: './deep/er/f', data: 'parents made as needed' },
        { name: 'z/', type: 'directory', mode: 0o755 },                 // a dir over a file
        { name: 'w', data: 'a file over a dir' },
        { name: 'keep', data: 'first' },
        { name: 'keep', data: 'second' },                               // the later member wins
        { name: 'hl', type: 'link', linkname: 'keep' },
        { name: '.wh..wh.plnk/123', data: 'aufs metadata is skipped' },
      ])
      await store.importLayer(tar, { format: 'oci', name: 'l', parent: 'base' })
      const fs = store.fs('l')
      assert.deepEqual((await fs.readdir('/')).sort(), ['deep', 'etc-link', 'hl', 'keep', 'q', 'w', 'x', 'y', 'z'])
      assert.deepEqual(await fs.readdir('/x'), ['b'])
      assert.deepEqual(await fs.readdir('/y'), ['n'])
      const y = await fs.stat('/y')
      assert.deepEqual([y.mode & 0o7777, y.uid, y.gid], [0o700, 5, 6])
      assert.equal(await fs.readFile('/q', 'utf8'), 'made here')
      const deep = await fs.stat('/deep/er')
      assert.deepEqual([deep.mode, deep.uid, deep.gid], [0o40755, 0, 0], 'a missing parent is root-owned 0755')
      assert.ok((await fs.stat('/z')).isDirectory())
      assert.equal(await fs.readFile('/w', 'utf8'), 'a file over a dir')
      assert.equal(await fs.readFile('/keep', 'utf8'), 'second')
      assert.equal((await fs.stat('/hl')).ino, (await fs.stat('/keep')).ino)
      // the layer holds y as an opaque dir, as the kernel records it: exported, it has the marker
      const out = join(tmp, 'out.tar')
      await store.exportLayer('l', out, { format: 'oci' })
      const members = names(await listTar(out))
      assert.ok(members.includes('y/.wh..wh..opq'), members.join(' '))
      assert.ok(!members.includes('y/.wh.c'), 'one marker, not a whiteout per name')
    })
  }))

  test('an opaque marker after members of the dir keeps what this layer wrote', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await base(store)
      const tar = await writeTar(join(tmp, 'l.tar'), [
        { name: 'y/sub/', type: 'directory' },
        { name: 'y/sub/e', data: 'e' },
        { name: 'y/m', data: 'm' },
        { name: 'y/.wh..wh..opq' },
      ])
      await store.importLayer(tar, { format: 'oci', name: 'l', parent: 'base' })
      const fs = store.fs('l')
      assert.deepEqual((await fs.readdir('/y')).sort(), ['m', 'sub'])
      assert.deepEqual(await fs.readdir('/y/sub'), ['e'])
    })
  }))

  test('a root-level opaque marker hides the whole parent', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await base(store)
      const tar = await writeTar(join(tmp, 'l.tar'), [{ name: 'only', data: 'o' }, { name: '.wh..wh..opq' }])
      await store.importLayer(tar, { format: 'oci', name: 'l', parent: 'base' })
      assert.deepEqual(await store.fs('l').readdir('/'), ['only'])
    })
  }))
})

describe('hostile and broken layers', () => {
  async function base(store: Store): Promise<void> {
    await store.prepare('b')
    const fs = store.fs('b')
    await fs.mkdir('/d')
    await fs.writeFile('/d/f', 'f')
    await fs.symlink('/etc', '/etc-link')
    await store.commit('base', 'b')
  }

  /** Each tar is refused with `code`, naming `path`, and the store does not change at all. */
  const cases: Array<{ what: string; code: string; path: string; members: TarMember[] }> = [
    { what: 'a .. path', code: 'EINVAL', path: '../x', members: [{ name: 'ok', data: 'fine' }, { name: '../x', data: 'out' }] },
    { what: 'an absolute path', code: 'EINVAL', path: '/abs', members: [{ name: 'ok', data: 'fine' }, { name: '/abs', data: 'out' }] },
    { what: 'a .. inside a path', code: 'EINVAL', path: 'a/../../x', members: [{ name: 'a/', type: 'directory' }, { name: 'a/../../x', data: 'out' }] },
    { what: 'a path through a symlink of the layer', code: 'ELOOP', path: 'l/passwd', members: [{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'l/passwd', data: 'root::0:0::/:/bin/sh' }] },
    { what: 'a path through a symlink of the parent', code: 'ELOOP', path: 'etc-link/passwd', members: [{ name: 'etc-link/passwd', data: 'x' }] },
    { what: 'a whiteout through a symlink', code: 'ELOOP', path: 'l/.wh.passwd', members: [{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'l/.wh.passwd' }] },
    { what: 'a hard link out of the root', code: 'EINVAL', path: 'h', members: [{ name: 'h', type: 'link', linkname: '../x' }] },
    { what: 'a hard link to an absolute path', code: 'EINVAL', path: 'h', members: [{ name: 'h', type: 'link', linkname: '/etc/passwd' }] },
    { what: 'a hard link to a missing path', code: 'ENOENT', path: 'h', members: [{ name: 'h', type: 'link', linkname: 'missing' }] },
    { what: 'a hard link through a symlink', code: 'ELOOP', path: 'h', members: [{ name: 'l', type: 'symlink', linkname: 'd' }, { name: 'h', type: 'link', linkname: 'l/f' }] },
    { what: 'a hard link to a path a whiteout removed', code: 'ENOENT', path: 'h', members: [{ name: 'd/.wh.f' }, { name: 'h', type: 'link', linkname: 'd/f' }] },
    { what: 'a hard link to a dir', code: 'EPERM', path: 'h', members: [{ name: 'h', type: 'link', linkname: 'd' }] },
    { what: 'a child of a file', code: 'ENOTDIR', path: 'd/f/x', members: [{ name: 'd/f/x', data: 'x' }] },
    { what: 'a symlink with an empty target', code: 'EINVAL', path: 's', members: [{ name: 's', type: 'symlink', linkname: '' }] },
    { what: 'a name over 255 bytes', code: 'ENAMETOOLONG', path: `d/${'n'.repeat(256)}`, members: [{ name: `d/${'n'.repeat(256)}`, data: 'x' }] },
    { what: 'a file as the root', code: 'EINVAL', path: './', members: [{ name: './', data: 'x' }] },
    { what: 'a bad PAX time', code: 'EINVAL', path: 'f', members: [{ name: 'f', data: 'x', pax: { mtime: 'yesterday' } }] },
    { what: 'an xattr in no namespace', code: 'ENOTSUP', path: 'f', members: [{ name: 'f', data: 'x', pax: { 'SCHILY.xattr.bogus': 'v' } }] },
    { what: 'a user xattr on a symlink', code: 'EPERM', path: 's', members: [{ name: 's', type: 'symlink', linkname: 't', pax: { 'SCHILY.xattr.user.x': 'v' } }] },
  ]

  for (const c of cases) {
    test(`refuses ${c.what} and changes nothing`, () => withTempDir('strata-oci-', async (tmp) => {
      await withStore(async (store) => {
        await base(store)
        const tar = await writeTar(join(tmp, 'bad.tar'), c.members)
        const before = await dumpDb(store)
        await rejectsWith(store.importLayer(tar, { format: 'oci', name: 'bad', parent: 'base' }), c.code, c.path)
        assert.deepEqual(await dumpDb(store), before)
      })
    }))
  }

  test('refuses a hostile gzip layer the same way', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await base(store)
      const tar = await writeTar(join(tmp, 'bad.tar.gz'), [{ name: 'big', data: patternBytes(3 * MiB, 1) }, { name: '../x', data: 'x' }], true)
      const before = await dumpDb(store)
      await rejectsWith(store.importLayer(tar, { format: 'oci', name: 'bad', parent: 'base' }), 'EINVAL', '../x')
      assert.deepEqual(await dumpDb(store), before)
    })
  }))

  test('files that are not layers, and bad arguments, are refused before the tar is read', () => withTempDir('strata-oci-', async (tmp) => {
    await withStore(async (store) => {
      await base(store)
      await store.prepare('active', 'base')
      const good = await writeTar(join(tmp, 'good.tar'), [{ name: 'f', data: 'f' }])
      const garbage = join(tmp, 'garbage.tar')
      await writeFile(garbage, patternBytes(4096, 9))
      const truncated = join(tmp, 'truncated.tar')
      await writeFile(truncated, (await readFile(await writeTar(join(tmp, 'whole.tar'), [{ name: 'f', data: patternBytes(5000, 1) }]))).subarray(0, 2048))
      const badGzip = join(tmp, 'bad.tar.gz')
      await writeFile(badGzip, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), patternBytes(100, 3)]))
      const before = await dumpDb(store)
      const oci = (name: string, parent = 'base') => ({ format: 'oci' as const, name, parent })
      await rejectsWith(store.importLayer(garbage, oci('n')), 'EINVAL', garbage)
      await rejectsWith(store.importLayer(truncated, oci('n')), 'EINVAL', truncated)
      await rejectsWith(store.importLayer(badGzip, oci('n')), 'EINVAL', badGzip)
      await rejectsWith(store.importLayer(join(tmp, 'missing.tar'), oci('n')), 'ENOENT', join(tmp, 'missing.tar'))
      await rejectsWith(store.importLayer(tmp, oci('n')), 'EISDIR', tmp)
      await rejectsWith(store.importLayer(good, oci('base')), 'EEXIST', 'base')
      await rejectsWith(store.importLayer(good, oci('n', 'nope')), 'ENOENT', 'nope')
      await rejectsWith(store.importLayer(good, oci('n', 'active')), 'EINVAL', 'active')
      await rejectsWith(store.importLayer(good, oci('')), 'EINVAL')
      await rejectsWith(store.importLayer(good, { format: 'zip' as 'oci', name: 'n' }), 'EINVAL', good)
      await rejectsWith(store.exportLayer('nope', join(tmp, 'o.tar'), { format: 'oci' }), 'ENOENT', 'nope')
      await rejectsWith(store.exportLayer('base', tmp, { format: 'oci' }), 'EISDIR', tmp)
      await rejectsWith(store.exportLayer('base', join(tmp, 'no-dir', 'o.tar'), { format: 'oci' }), 'ENOENT', join(tmp, 'no-dir', 'o.tar'))
      await rejectsWith(store.exportLayer('base', join(tmp, 'o'), { format: 'overlay', flatten: true }), 'EINVAL')
      assert.deepEqual(await dumpDb(store), before)
      assert.deepEqual((await readdir(tmp)).sort(), ['bad.tar.gz', 'garbage.tar', 'good.tar', 'truncated.tar', 'whole.tar'], 'no partial tar is left behind')
    })
  }))
})

describe('tars of other tools', () => {
  const gnuTar = (): Promise<boolean> => run('tar', ['--version']).then((v) => v.includes('GNU tar'), () => false)

  async function hostTree(src: string, xattr: Buffer): Promise<void> {
    await mkdir(join(src, 'd', 'e'), { recursive: true })
    await writeFile(join(src, 'd', 'f'), 'f')
    await writeFile(join(src, `${'long-name-'.repeat(15)}.txt`), 'a name over 100 bytes')
    await link(join(src, 'd', 'f'), join(src, 'hard'))
    await symlink('d/f', join(src, 'sym'))
    await writeFile(join(src, 'big'), patternBytes(2 * MiB + 5, 7))
    await setAttribute(join(src, 'd', 'f'), 'user.note', xattr)
    await chmod(join(src, 'd'), 0o750)
    for (const p of ['d/e', 'd/f', 'sym', 'big', 'd', '']) await lutimes(join(src, p), 1_600_000_000.25, 1_600_000_000.5)
  }

  test('a GNU tar archive of a host dir imports as snapshotDir stores the dir', async (t) => {
    if (!(await gnuTar())) return t.skip('GNU tar is not installed')
    await withTempDir('strata-oci-', async (tmp) => {
      const src = join(tmp, 'src')
      await hostTree(src, Buffer.from('text value'))
      const tar = join(tmp, 'gnu.tar')
      await run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '-C', src, '-cf', tar, '.'])
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 'host' })
        await store.importLayer(tar, { format: 'oci', name: 'tar' })
        assert.deepEqual(await store.diff('host', 'tar'), [])
        const [h, s] = [await store.fs('tar').stat('/hard'), await store.fs('tar').stat('/d/f')]
        assert.equal(h.ino, s.ino, 'hard links stay one inode')
        assert.equal((await store.fs('tar').getxattr('/d/f', 'user.note')).toString(), 'text value')
      })
    })
  })

  test('GNU tar reads a flattened export back into the same tree', async (t) => {
    if (!(await gnuTar())) return t.skip('GNU tar is not installed')
    await withTempDir('strata-oci-', async (tmp) => {
      const src = join(tmp, 'src')
      await hostTree(src, Buffer.from('text value'))
      await withStore(async (store) => {
        await store.snapshotDir(src, { name: 'host' })
        const tar = join(tmp, 'flat.tar')
        await store.exportLayer('host', tar, { format: 'oci', flatten: true })
        const out = join(tmp, 'out')
        await mkdir(out)
        await run('tar', ['--xattrs', '--xattrs-include=*', '-xpf', tar, '-C', out])
        await store.snapshotDir(out, { name: 'back' })
        assert.deepEqual(await store.diff('host', 'back'), [])
      })
    })
  })

  test('a binary xattr value GNU tar wrote raw is refused, not stored wrong', async (t) => {
    if (!(await gnuTar())) return t.skip('GNU tar is not installed')
    await withTempDir('strata-oci-', async (tmp) => {
      const src = join(tmp, 'src')
      await hostTree(src, Buffer.from([0x80, 0xff, 0x00, 0xc0]))
      const tar = join(tmp, 'gnu.tar')
      await run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '-C', src, '-cf', tar, '.'])
      await withStore(async (store) => {
        const before = await dumpDb(store)
        // the first of the file's two names carries the xattr: which one is GNU tar's choice
        const err = await rejectsWith(store.importLayer(tar, { format: 'oci', name: 'tar' }), 'ENOTSUP')
        assert.match(err.message, /xattr 'user\.note' .*'\.\/(d\/f|hard)'$/)
        assert.deepEqual(await dumpDb(store), before)
      })
    })
  })
})

describe('strata import and export', () => {
  interface Run { code: number; stdout: string; stderr: string }
  const strata = (args: string[]): Promise<Run> => new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, STRATA_DEBUG: '' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr })
    })
  })
  const ok = async (args: string[]): Promise<string> => {
    const r = await strata(args)
    assert.equal(r.code, 0, `strata ${args.join(' ')}: ${r.stderr}`)
    assert.equal(r.stderr, '')
    return r.stdout
  }

  test('export and import a layer, as text and JSON, the format told or found', () => withTempDir('strata-oci-cli-', async (tmp) => {
    const storeDir = join(tmp, 'store')
    const store = await Store.open({ path: storeDir })
    try {
      await buildBaseAndChild(store)
    } finally {
      await store.close()
    }
    const tar = join(tmp, 'child.tar')
    assert.equal(await ok(['--store', storeDir, 'export', '--format', 'oci', 'child', tar]), `exported 'child' to ${tar}\n`)
    const result = JSON.parse(await ok(['--store', storeDir, 'export', 'child', join(tmp, 'flat.tar.gz'), '--flatten', '--json'])) as { format: string; path: string }
    assert.deepEqual(result, { format: 'oci', path: join(tmp, 'flat.tar.gz') })
    assert.equal(await ok(['--store', storeDir, 'import', tar, '--parent', 'base', '--name', 'child2', '--label', 'k=v']), `imported '${tar}' as snapshot 'child2'\n`)
    const info = JSON.parse(await ok(['--store', storeDir, 'import', '--format', 'oci', join(tmp, 'flat.tar.gz'), '--name', 'flat', '--json'])) as { name: string; parent: string }
    assert.deepEqual([info.name, info.parent], ['flat', ''])

    const check = await Store.open({ path: storeDir })
    try {
      assert.deepEqual(await check.diff('child', 'child2'), [])
      assert.deepEqual(await check.diff('child', 'flat'), [])
      assert.deepEqual((await check.stat('child2')).labels, { k: 'v' })
    } finally {
      await check.close()
    }

    // no format given and none to find from the name: a one-line usage error
    const r = await strata(['--store', storeDir, 'export', 'child', join(tmp, 'layer.bin')])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^strata: .*--format/)
    // a hostile tar: one line naming the member, exit 1
    const bad = await writeTar(join(tmp, 'bad.tar'), [{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'l/passwd', data: 'x' }])
    const refused = await strata(['--store', storeDir, 'import', bad, '--parent', 'base', '--name', 'bad'])
    assert.equal(refused.code, 1)
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr)
    assert.match(refused.stderr, /^strata: ELOOP: .*'l\/passwd'/)
    // --name is required
    assert.equal((await strata(['--store', storeDir, 'import', tar])).code, 2)
  }))
})
