import { linkSync } from 'node:fs'
import { link, lstat, mkdir, readdir, rm, rmdir, stat, symlink } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import type { Store } from '../store.js'
import type { ExportResult } from '../types.js'
import type { SnapshotRecord, InodeRecord } from '../store/records.js'
import { ROOT_INO, isWhiteout } from '../store/records.js'
import { StoreLayer } from '../store/layer.js'
import { FileContent } from '../store/filedata.js'
import { T, isDirType, typeOf } from '../overlay/node.js'
import { toNs } from '../overlay/stats.js'
import { OPAQUE_VALUE, WHITEOUT_RDEV, layerXattrName, overlayXattrNames, type OverlayXattrNames } from '../overlay/whiteout.js'
import { fsError, isCode } from '../errors.js'
import { checkProgress } from '../validate.js'
import { IO_BYTES, forEachLimit, hostError } from '../host/io.js'
import { hostMayWriteXattr, writeHostXattr } from '../host/xattrs.js'
import { makeNode, makeSocket } from '../host/nodes.js'
import { applyHostAttrs, writeHostFile } from './checkout.js'
import { liftedLinks, type LiftedLinks } from './overlaylinks.js'

const SYSCALL = 'exportOverlayDirs'

/** Files written at once within one dir, as checkout does. */
const EXPORT_CONCURRENCY = 8

export interface OverlayExportOptions {
  /** Write the markers as `user.overlay.*` (mount with `userxattr`), not `trusted.overlay.*`. */
  userxattr?: boolean
  /** Called with the bytes of file data written so far. */
  progress?: (bytes: number) => void
}

/**
 * Where the layer dirs went (`path`: one dir per layer, 0 the bottom, k the top), and the
 * `lowerdir=` value that mounts them: `DIR/k:…:DIR/0`, top first as the kernel wants it, with
 * ':' and '\' escaped.
 */
export type OverlayExportResult = ExportResult & { format: 'overlay'; lowerdir: string }

/**
 * Writes the layers of a snapshot's stack (committed, view, or active with its writable layer on
 * top) as dirs in the kernel overlayfs's format: each layer's own records, whiteouts as char
 * devices 0/0, opaque dirs and redirects as `overlay.*` xattrs. Mounting them as lower dirs
 * shows the snapshot's tree. The one thing the kernel's format cannot hold, an inode named in
 * several layers, goes whole into the top dir (overlaylinks.ts).
 *
 * An active snapshot should not change while it is exported. A failure removes the layer dirs
 * written so far.
 */
export async function exportOverlayDirs(store: Store, snap: string, dir: string, opts: OverlayExportOptions = {}): Promise<OverlayExportResult> {
  const r = await store.record(snap, SYSCALL)
  if (typeof dir !== 'string' || dir === '') throw fsError('EINVAL', SYSCALL, String(dir), 'directory must be a non-empty path')
  if (typeof opts !== 'object' || opts === null) throw fsError('EINVAL', SYSCALL, dir, 'options must be an object')
  const { userxattr = false, progress } = opts
  if (typeof userxattr !== 'boolean') throw fsError('EINVAL', SYSCALL, dir, 'userxattr must be a boolean')
  checkProgress(progress, SYSCALL, dir)
  const target = resolve(dir)
  const existing = await stat(target).catch((err: unknown) => {
    if (isCode(err, 'ENOENT')) return undefined
    throw hostError(err, SYSCALL, target)
  })
  if (existing && !existing.isDirectory()) throw fsError('ENOTDIR', SYSCALL, target)
  const inside = existing ? await readdir(target).catch((err: unknown) => { throw hostError(err, SYSCALL, target) }) : []
  if (inside.length > 0) throw fsError('EEXIST', SYSCALL, target, 'the destination must be a new or empty directory')

  if (r.kind === 'active') await store.flushAll()
  const layers = await stackOf(store, snap, r)
  const lifted = await liftedLinks(store, snap, r)
  const dirs: string[] = []
  const whiteouts = new Whiteouts(target)
  try {
    if (!existing) await mkdir(target, { recursive: true, mode: 0o755 })
    const writer = new LayerDirWriter(store, overlayXattrNames(userxattr), whiteouts, progress)
    for (let i = 0; i < layers.length; i++) {
      const host = join(target, String(i))
      dirs.push(host)
      const top = i === layers.length - 1
      await writer.writeLayer(new StoreLayer(layers[i], store.db), host, top ? lifted : undefined)
    }
  } catch (err) {
    await whiteouts.close().catch(() => undefined)
    for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => undefined)
    if (!existing) await rmdir(target).catch(() => undefined)
    throw hostError(err, SYSCALL, target)
  }
  await whiteouts.close()
  return { format: 'overlay', path: target, lowerdir: dirs.reverse().map(escapeLowerdir).join(':') }
}

/** The layers of a snapshot's stack, bottom first. */
async function stackOf(store: Store, key: string, r: SnapshotRecord): Promise<string[]> {
  const out: string[] = []
  if (r.kind === 'active') out.push(r.layer!)
  let name = r.kind === 'committed' ? key : r.parent
  while (name !== '') {
    const p = await store.record(name, SYSCALL)
    out.push(p.layer!)
    name = p.parent
  }
  return out.reverse()
}

/** The kernel splits lowerdir= at ':' and takes '\' as an escape. */
const escapeLowerdir = (path: string): string => path.replace(/[\\:]/g, (c) => `\\${c}`)

/**
 * Whiteouts as the kernel makes them since 5.8: hard links of one char device 0/0, so that a
 * layer with many whiteouts costs one `mknod` run (Node has no mknod) and many link(2) calls. The
 * shared device lives in the destination dir while the layers are written.
 */
class Whiteouts {
  private current?: string
  private readonly made: string[] = []

  constructor(private readonly dir: string) {}

  /** A blocking link(2): a few microseconds, a seventh of the same call through the thread pool. */
  async make(path: string): Promise<void> {
    this.current ??= await this.newDevice()
    try {
      linkSync(this.current, path)
    } catch (err) {
      if (!isCode(err, 'EMLINK')) throw err
      // the host's link limit (65,000 on ext4): another device takes the next ones
      this.current = await this.newDevice()
      linkSync(this.current, path)
    }
  }

  async close(): Promise<void> {
    for (const d of this.made) await rm(d, { force: true })
    this.made.length = 0
    this.current = undefined
  }

  private async newDevice(): Promise<string> {
    const path = join(this.dir, `.whiteout-${randomBytes(6).toString('hex')}`)
    await makeNode(path, T.CHR, WHITEOUT_RDEV)
    this.made.push(path)
    return path
  }
}

/** Writes one store layer's raw records as a layer dir. */
class LayerDirWriter {
  private readonly asRoot = process.getuid?.() === 0
  private readonly buffers: Buffer[] = []
  private done = 0

  constructor(private readonly store: Store, private readonly x: OverlayXattrNames, private readonly whiteouts: Whiteouts, private readonly progress: ((bytes: number) => void) | undefined) {}

  /** `lifted`: for the top layer, the inodes whose every name it takes (and then only it). */
  async writeLayer(layer: StoreLayer, host: string, lifted: LiftedLinks | undefined): Promise<void> {
    const root = await this.record(layer, ROOT_INO, '/')
    await mkdir(host, 0o700)
    // dirs get their mode and times last, once nothing is added to them any more
    const dirs: Array<[string, InodeRecord]> = [[host, root]]
    const skip = new Set(lifted?.inodes.map((i) => i.ino))
    await this.writeDir(layer, ROOT_INO, '/', host, dirs, skip, new Map())
    if (lifted) await this.writeLifted(lifted, host, dirs)
    for (const [path, rec] of dirs.reverse()) await this.applyAttrs(path, rec)
  }

  private async writeDir(layer: StoreLayer, dirIno: number, path: string, host: string, dirs: Array<[string, InodeRecord]>, skip: Set<number>, linked: Map<number, Promise<string>>): Promise<void> {
    const files: Array<[string, number, string]> = []
    for (const [name, e] of await layer.entries(dirIno)) {
      const childPath = path === '/' ? `/${name}` : `${path}/${name}`
      const childHost = join(host, name)
      if (isWhiteout(e)) {
        await this.whiteouts.make(childHost)
      } else if (isDirType(e[1])) {
        const rec = await this.record(layer, e[0], childPath)
        await mkdir(childHost, 0o700)
        if (rec.opaque) await writeHostXattr(childHost, this.x.opaque, OPAQUE_VALUE)
        if (rec.redirect !== undefined) await writeHostXattr(childHost, this.x.redirect, Buffer.from(rec.redirect))
        dirs.push([childHost, rec])
        await this.writeDir(layer, e[0], childPath, childHost, dirs, skip, linked)
      } else if (!skip.has(e[0])) {
        files.push([childHost, e[0], childPath])
      }
    }
    await forEachLimit(files, EXPORT_CONCURRENCY, async ([childHost, ino, childPath]) => {
      const rec = await this.record(layer, ino, childPath)
      if (rec.nlink > 1) {
        // the first name of a hard-linked inode makes the file, the others link to it
        const first = linked.get(ino)
        if (first) return link(await first, childHost)
        linked.set(ino, this.writeObject(rec, childHost, childPath).then(() => childHost))
        return void (await linked.get(ino))
      }
      await this.writeObject(rec, childHost, childPath)
    })
  }

  /** Every name of each lifted inode, as links of one file; dirs missing here are made plain. */
  private async writeLifted(lifted: LiftedLinks, host: string, dirs: Array<[string, InodeRecord]>): Promise<void> {
    const made = new Set<string>()
    const ensureDir = async (path: string): Promise<void> => {
      if (path === '/' || made.has(path)) return
      const at = join(host, path)
      const st = await lstat(at).catch((err: unknown) => { if (isCode(err, 'ENOENT')) return undefined; throw err })
      if (!st) {
        await ensureDir(path.slice(0, path.lastIndexOf('/')) || '/')
        await mkdir(at, 0o700)
        // a plain dir: it merges with the dir below by name, as the merged tree has it there
        const { opaque: _o, redirect: _r, ...rec } = lifted.dirs.get(path)!
        dirs.push([at, rec])
      }
      made.add(path)
    }
    for (const { rec, paths } of lifted.inodes) {
      let first: string | undefined
      for (const path of paths) {
        await ensureDir(path.slice(0, path.lastIndexOf('/')) || '/')
        const at = join(host, path)
        if (first === undefined) await this.writeObject(rec, at, path)
        else await link(first, at)
        first ??= at
      }
    }
  }

  private async writeObject(rec: InodeRecord, host: string, path: string): Promise<void> {
    const type = typeOf(rec.mode)
    switch (type) {
      case T.REG: await this.writeData(rec, host, path); break
      case T.LNK: await symlink(rec.target ?? '', host); break
      case T.CHR: case T.BLK: case T.FIFO: await makeNode(host, type, rec.rdev); break
      case T.SOCK: await makeSocket(host); break
      default: throw fsError('ENOTSUP', SYSCALL, path, `file type ${type.toString(8)} cannot be written out`)
    }
    await this.applyAttrs(host, rec)
  }

  private async writeData(rec: InodeRecord, host: string, path: string): Promise<void> {
    const content = await FileContent.load(rec, this.store.chunks, { path })
    const src = { read: async (buf: Buffer, off: number, len: number, pos: number) => ({ bytesRead: await content.read(buf, off, len, pos) }) }
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    try {
      await writeHostFile(src, rec.size, host, buf)
    } finally {
      this.buffers.push(buf)
    }
    this.done += rec.size
    this.progress?.(this.done)
  }

  /** The record's xattrs go under the names the overlay shows them by (escaped where needed). */
  private async applyAttrs(host: string, rec: InodeRecord): Promise<void> {
    const xattrs = Object.entries(rec.xattrs ?? {})
      .map(([name, value]): [string, Buffer] => [layerXattrName(name, this.x), Buffer.from(value)])
      .filter(([name]) => hostMayWriteXattr(name, this.asRoot))
    await applyHostAttrs(host, { mode: rec.mode, uid: rec.uid, gid: rec.gid, atimeNs: toNs(rec.atime), mtimeNs: toNs(rec.mtime) }, xattrs, this.asRoot)
  }

  private async record(layer: StoreLayer, ino: number, path: string): Promise<InodeRecord> {
    const rec = await layer.inode(ino)
    if (!rec) throw fsError('EIO', SYSCALL, path, `layer ${layer.id} has an entry but no inode ${ino}`)
    return rec
  }
}
