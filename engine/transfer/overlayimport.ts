import { constants } from 'node:fs'
import { lstat, open, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setImmediate } from 'node:timers/promises'
import type { Store } from '../store.js'
import type { SnapshotInfo } from '../types.js'
import { ROOT_INO, WHITEOUT, type InodeRecord } from '../store/records.js'
import { FileContent } from '../store/filedata.js'
import { T, joinPath, typeOf, type OvlNode } from '../overlay/node.js'
import type { Overlay } from '../overlay/overlay.js'
import { Mutex } from '../overlay/lock.js'
import { NewFile, PendingChanges } from '../overlay/pending.js'
import { fromNs } from '../overlay/stats.js'
import { parseRedirect, redirectConfig } from '../overlay/redirect.js'
import { fileXattrName, isWhiteoutDevice, isXattrWhiteout, overlayXattrNames, parseOpaqueXattr, type OverlayXattrNames } from '../overlay/whiteout.js'
import { fsError } from '../errors.js'
import { assertCommittedParent, assertFree, checkLabels, checkProgress } from '../validate.js'
import { HostScan, hostKey, readHostLink, type HostEntry } from '../host/scan.js'
import { readHostXattrs, type Xattrs } from '../host/xattrs.js'
import { IO_BYTES, SmallFileReader, forEachLimit, hostError, readFull, writeNonZeroRuns } from '../host/io.js'
import { stampOf } from './compare.js'

const SYSCALL = 'importOverlayDir'

/** Files read at once within one dir, as the host importer does. */
const IMPORT_CONCURRENCY = 16

export interface OverlayImportOptions {
  /** Name of the new committed snapshot. */
  name: string
  /** Committed snapshot the layer goes on top of (none or '': the empty tree). */
  parent?: string
  labels?: Record<string, string>
  /** The markers are `user.overlay.*` (the kernel's `userxattr` option), not `trusted.overlay.*`. */
  userxattr?: boolean
  /** Called with the bytes of file data imported so far. */
  progress?: (bytes: number) => void
}

/**
 * Imports a directory in the kernel overlayfs's layer format (an upper dir, a Docker overlay2
 * `diff` dir) as ONE new committed layer on top of `parent`: the layer holds exactly the dir's
 * records, the markers translated to the store's (whiteout entries, opaque and redirect on dir
 * records). Unlike snapshotDir, nothing is compared with the parent: a name in the dir replaces
 * or merges with the parent's by the overlay's rules when the merged index is built at commit.
 *
 * The whole dir is scanned and checked (names, redirects, metacopy files) before the store
 * changes; the records are then written through a temporary active snapshot on the parent, in
 * the batches the host importer uses, and committed. A failure removes the temporary snapshot.
 */
export async function importOverlayDir(store: Store, dir: string, opts: OverlayImportOptions): Promise<SnapshotInfo> {
  if (typeof dir !== 'string' || dir === '') throw fsError('EINVAL', SYSCALL, String(dir), 'directory must be a non-empty path')
  if (typeof opts !== 'object' || opts === null) throw fsError('EINVAL', SYSCALL, dir, 'options with a snapshot name are required')
  const { name, parent = '', labels, userxattr = false, progress } = opts
  await assertFree(store.db, name, SYSCALL)
  if (parent !== '') assertCommittedParent(await store.record(parent, SYSCALL), parent, SYSCALL)
  checkLabels(labels, SYSCALL, name)
  checkProgress(progress, SYSCALL, dir)
  if (typeof userxattr !== 'boolean') throw fsError('EINVAL', SYSCALL, dir, 'userxattr must be a boolean')

  const rootPath = resolve(dir)
  const rootStat = await stat(rootPath, { bigint: true }).catch((err: unknown) => { throw hostError(err, SYSCALL, rootPath) })
  if (!rootStat.isDirectory()) throw fsError('ENOTDIR', SYSCALL, rootPath)
  const storeStat = await lstat(store.path, { bigint: true }).catch(() => undefined)
  const scan = new HostScan(storeStat ? hostKey(storeStat) : undefined)
  const reader = new LayerReader(overlayXattrNames(userxattr))
  const root = await scan.tree(rootPath, rootStat)
    .then((tree) => reader.read(tree))
    .catch((err: unknown) => { throw hostError(err, SYSCALL, rootPath) })

  return store.withImportSnapshot(parent, async (tmpKey) => {
    const writer = new LayerWriter(await store.overlayFor(tmpKey, {}), reader.names, progress)
    await writer.write(root)
    return await store.commit(name, tmpKey, { labels })
  }).catch((err: unknown) => { throw hostError(err, SYSCALL, rootPath) })
}

/** One name of the layer dir, as the kernel reads it. */
interface LayerName {
  e: HostEntry
  /** The name is deleted in this layer. */
  whiteout: boolean
  /** The file's own xattrs (the overlay's markers left out). */
  xattrs?: Xattrs
  opaque?: boolean
  redirect?: string
  children?: LayerName[]
}

const STORABLE = new Set<number>([T.REG, T.DIR, T.LNK, T.CHR, T.BLK, T.FIFO, T.SOCK])
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Reads the markers of a scanned layer dir and checks them, before anything is written: the
 * whiteout and opaque forms are the ones whiteout.ts names, redirects must pass parseRedirect,
 * and metacopy files (data in a lower layer) are refused, as the store has no such record.
 */
class LayerReader {
  /** Names in the layer of each host inode with several links (whiteouts aside). */
  readonly names = new Map<string, number>()

  constructor(private readonly x: OverlayXattrNames) {}

  /** The layer root is always merged with the parent's root: opaque and redirect do not apply to it. */
  read(root: HostEntry): Promise<LayerName> {
    return this.dir(root, true)
  }

  private async dir(e: HostEntry, isRoot: boolean): Promise<LayerName> {
    await setImmediate() // a large tree must not hold the event loop
    const raw = readHostXattrs(e.path, T.DIR, true) ?? {}
    const out: LayerName = { e, whiteout: false, xattrs: this.fileXattrs(raw) }
    if (!isRoot) {
      if (parseOpaqueXattr(raw[this.x.opaque]).opaque) out.opaque = true
      const redirect = raw[this.x.redirect]
      if (redirect !== undefined) out.redirect = this.checkRedirect(redirect, e.path)
    }
    out.children = []
    for (const c of e.children!) out.children.push(await this.child(c))
    return out
  }

  private async child(e: HostEntry): Promise<LayerName> {
    const type = typeOf(e.mode)
    // a whiteout device may be one of many names of the kernel's shared whiteout inode
    if (isWhiteoutDevice(e.mode, e.rdev)) return { e, whiteout: true }
    if (type === T.DIR) return this.dir(e, false)
    if (!STORABLE.has(type)) throw fsError('ENOTSUP', SYSCALL, e.path, `file type ${type.toString(8)} cannot be stored`)
    const raw = readHostXattrs(e.path, type, true)
    if (raw && isXattrWhiteout(e.mode, e.size, raw[this.x.whiteout] !== undefined)) return { e, whiteout: true }
    if (raw?.[this.x.metacopy] !== undefined) {
      throw fsError('ENOTSUP', SYSCALL, e.path, `metacopy file (${this.x.metacopy}): its data is in a lower layer, which the store does not model`)
    }
    if (e.nlink > 1) this.names.set(e.key, (this.names.get(e.key) ?? 0) + 1)
    return { e, whiteout: false, xattrs: raw && this.fileXattrs(raw) }
  }

  private fileXattrs(raw: Xattrs): Xattrs | undefined {
    const out: Xattrs = {}
    for (const [name, value] of Object.entries(raw)) {
      const file = fileXattrName(name, this.x)
      if (file !== undefined) out[file] = value
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  private checkRedirect(raw: Buffer, path: string): string {
    const bad = (why: string): never => { throw fsError('EINVAL', SYSCALL, path, `invalid ${this.x.redirect} ${JSON.stringify(raw.toString('latin1'))}: ${why}`) }
    let value = ''
    try {
      value = utf8.decode(raw)
    } catch {
      bad('not valid UTF-8')
    }
    try {
      parseRedirect(value, redirectConfig(), path)
    } catch {
      bad(`a redirect is an absolute path of names ('/a/b') or one name, without empty, '.' or '..' parts, and not over-long`)
    }
    return value
  }
}

/**
 * Writes the records of a read layer into the upper layer of an active snapshot: entries as
 * they are (a whiteout as [0, 0]), records with the host's attributes and fresh inode numbers,
 * file data into chunks. Goes through PendingChanges, the batching of the host importer: new
 * chunks are deduplicated against the store, batches are written while the next one fills.
 */
class LayerWriter {
  /** PendingChanges takes one call at a time. */
  private readonly steps = new Mutex()
  private readonly pending: PendingChanges
  /** The store inode of each host inode with several names in the layer. */
  private readonly inos = new Map<string, number>()
  private readonly reader = new SmallFileReader()
  private readonly buffers: Buffer[] = []
  private done = 0

  constructor(private readonly ov: Overlay, private readonly names: Map<string, number>, private readonly progress: ((bytes: number) => void) | undefined) {
    this.pending = new PendingChanges(ov)
  }

  async write(root: LayerName): Promise<void> {
    // the layer dir's root is the layer's root: its attributes replace the parent's copy
    await this.step(async () => this.pending.putRecord(ROOT_INO, dirRecord(root)))
    await this.writeDir(root, ROOT_INO, '/')
    await this.step(() => this.pending.writeAll())
  }

  private async writeDir(dir: LayerName, dirIno: number, path: string): Promise<void> {
    const independent = (c: LayerName): boolean => !c.whiteout && typeOf(c.e.mode) === T.REG && this.nlinkOf(c.e) === 1
    // files with one name do not depend on each other: several at once hide each one's reads
    await forEachLimit(dir.children!.filter(independent), IMPORT_CONCURRENCY, (c) => this.writeFile(c, dirIno, joinPath(path, c.e.name)))
    for (const c of dir.children!) if (!independent(c)) await this.writeName(c, dirIno, joinPath(path, c.e.name))
  }

  private async writeName(c: LayerName, dirIno: number, path: string): Promise<void> {
    const { e } = c
    const type = typeOf(e.mode)
    if (c.whiteout) return this.step(() => this.addEntry(dirIno, e.name, WHITEOUT[0], WHITEOUT[1]))
    if (type === T.DIR) {
      const ino = await this.ov.env.allocIno()
      await this.step(async () => {
        this.pending.addEntry(dirIno, e.name, ino, T.DIR)
        this.pending.putRecord(ino, dirRecord(c))
        await this.pending.writeIfFull()
      })
      return this.writeDir(c, ino, path)
    }
    const linked = this.inos.get(e.key)
    if (linked !== undefined) return this.step(() => this.addEntry(dirIno, e.name, linked, type))
    if (this.nlinkOf(e) > 1) this.inos.set(e.key, await this.ov.env.allocIno())
    if (type === T.REG) return this.writeFile(c, dirIno, path)
    const ino = this.inos.get(e.key) ?? (await this.ov.env.allocIno())
    const rec = objectRecord(c, this.nlinkOf(e))
    if (type === T.LNK) {
      rec.target = await readHostLink(e.path)
      rec.size = Buffer.byteLength(rec.target)
    }
    await this.step(async () => {
      this.pending.addEntry(dirIno, e.name, ino, type)
      this.pending.putRecord(ino, rec)
      await this.pending.writeIfFull()
    })
  }

  /** A regular file: a small one read whole, a large one in pieces whose all-zero chunks stay holes. */
  private async writeFile(c: LayerName, dirIno: number, path: string): Promise<void> {
    const { e } = c
    const ino = this.inos.get(e.key) ?? (await this.ov.env.allocIno())
    const rec: InodeRecord = { ...objectRecord(c, this.nlinkOf(e)), origin: stampOf(e) }
    const node: OvlNode = { name: e.name, path, parent: null, ino, type: T.REG, upper: true, opaque: false }
    const start = (): NewFile => {
      this.pending.addEntry(dirIno, e.name, ino, T.REG)
      const file = new NewFile(node, rec, FileContent.empty(this.ov.env.chunks!))
      this.pending.addFile(file)
      return file
    }
    if (e.size <= IO_BYTES) {
      const data = await this.reader.read(e.path, e.size)
      await this.step(async () => {
        const file = start()
        await this.pending.writeData(file, data, 0)
        file.done = true
        await this.pending.writeIfFull()
      })
      return this.advance(data.length)
    }
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    const src = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const file = await this.step(async () => start())
      let pos = 0
      for (;;) {
        const n = await readFull(src, buf, pos)
        if (n === 0) break
        const at = pos
        await this.step(async () => {
          await writeNonZeroRuns(buf, n, at, (off, len, to) => this.pending.writeData(file, buf.subarray(off, off + len), to))
          await this.pending.writeIfFull()
        })
        pos += n
        this.advance(n)
        if (n < buf.length) break
      }
      await this.step(async () => {
        // what was not written up to the end reads as zeroes: a hole
        if (file.content.size < pos) {
          await file.content.truncate(pos)
          file.unwritten = true
        }
        file.done = true
        await this.pending.writeIfFull()
      })
    } finally {
      await src.close()
      this.buffers.push(buf)
    }
  }

  private async addEntry(dirIno: number, name: string, ino: number, type: number): Promise<void> {
    this.pending.addEntry(dirIno, name, ino, type)
    await this.pending.writeIfFull()
  }

  private nlinkOf(e: HostEntry): number {
    return e.nlink > 1 ? (this.names.get(e.key) ?? 1) : 1
  }

  private step<R>(fn: () => Promise<R>): Promise<R> {
    return this.steps.run(fn)
  }

  private advance(bytes: number): void {
    this.done += bytes
    this.progress?.(this.done)
  }
}

/** A record with the host object's attributes; the link count is that within the layer. */
function objectRecord(c: LayerName, nlink: number): InodeRecord {
  const { e } = c
  const type = typeOf(e.mode)
  const rec: InodeRecord = {
    mode: e.mode, uid: e.uid, gid: e.gid, rdev: type === T.CHR || type === T.BLK ? e.rdev : 0, size: 0, nlink,
    atime: fromNs(e.atimeNs), mtime: fromNs(e.mtimeNs), ctime: fromNs(e.ctimeNs),
  }
  if (c.xattrs) rec.xattrs = c.xattrs
  return rec
}

/** A dir's record: two links and one per subdir in the layer, and its markers. */
function dirRecord(c: LayerName): InodeRecord {
  const subdirs = c.children!.filter((k) => !k.whiteout && typeOf(k.e.mode) === T.DIR).length
  const rec = objectRecord(c, 2 + subdirs)
  if (c.opaque) rec.opaque = true
  if (c.redirect !== undefined) rec.redirect = c.redirect
  return rec
}
