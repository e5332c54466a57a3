import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Store } from '../store.js'
import type { SnapshotFs, Stats } from '../snapshotfs.js'
import { fsError, isCode } from '../errors.js'
import { checkProgress } from '../validate.js'
import type { ExportLayerOptions, ExportResult, ProgressFn } from '../types.js'
import type { InodeRecord, SnapshotRecord } from '../store/records.js'
import { StoreLayer } from '../store/layer.js'
import { T, isDirType, joinPath, typeOf, type OvlNode } from '../overlay/node.js'
import { lookupChild, lowerPathLookup, nodeInode, rootNode, type NameiContext } from '../overlay/namei.js'
import { redirectConfig } from '../overlay/redirect.js'
import { isWhiteoutEntry } from '../overlay/whiteout.js'
import { toNs } from '../overlay/stats.js'
import { sameXattrs } from '../host/xattrs.js'
import { IO_BYTES, hostError, readFull } from '../host/io.js'
import { LayerTarWriter, tarHeader, type EntryType } from './ocitar.js'
import { isOverlayPrivateXattr } from '../overlay/whiteout.js'
import { isWhiteoutName, memberName, opaqueName, whiteoutName } from './ocipaths.js'

const SYSCALL = 'exportLayer'

/**
 * Export of a snapshot as an OCI image layer tar: its own layer's changes against its parent,
 * or (flatten) its whole tree. The changes are read from the snapshot's layer records, as
 * Docker's overlay2 driver reads an upper dir, and every object's content from the merged view:
 *
 *   - a whiteout in the layer: `.wh.<name>`;
 *   - an opaque dir: the dir, `.wh..wh..opq`, and what the layer put in it;
 *   - a renamed dir (a redirect: OCI has none): the dir in full at its new path, with an opaque
 *     marker if the parent has a dir there; the old path is hidden by the layer's whiteout there;
 *   - a merged dir: the dir and the layer's entries in it; the root when its attributes changed.
 *
 * An inode with several names is written once, its other names as hard-link members. When some
 * of its names lie outside what the layer changed (a new link to a file of the parent, a chmod
 * through one name), those names are written too, as links, so that the group stays one inode
 * where the tar is applied. Sockets have no tar form and are left out, as tar leaves them out.
 */
export async function exportOciLayer(store: Store, snap: string, dest: string, opts: ExportLayerOptions): Promise<ExportResult> {
  const r = await store.record(snap, SYSCALL)
  if (typeof dest !== 'string' || dest === '') throw fsError('EINVAL', SYSCALL, String(dest), 'destination must be a non-empty path')
  if (opts.flatten !== undefined && typeof opts.flatten !== 'boolean') throw fsError('EINVAL', SYSCALL, dest, 'flatten must be a boolean')
  checkProgress(opts.progress, SYSCALL, dest)
  const target = resolve(dest)
  const existing = await stat(target).catch((err: unknown) => {
    if (isCode(err, 'ENOENT')) return undefined
    throw hostError(err, SYSCALL, target)
  })
  if (existing?.isDirectory()) throw fsError('EISDIR', SYSCALL, target, 'an OCI layer is written to a file')
  // open files of an active snapshot may hold data not yet in the store
  if (r.kind === 'active') await store.lock.run(() => store.flushAll())

  const writer = LayerTarWriter.create(target, /\.(gz|tgz)$/.test(target))
  try {
    const exporter = new LayerExporter(store.fs(snap), writer, opts.progress)
    if (opts.flatten) await exporter.tree('/')
    else await exporter.changes(store, r)
    await exporter.completeLinks()
    await writer.finish()
  } catch (err) {
    // a failure of the output (a full disk) shows in the producer as a closed stream: report the cause
    const cause = writer.error ?? err
    await writer.abort()
    throw hostError(cause, SYSCALL, target)
  }
  return { format: 'oci', path: target }
}

/** Lookups made at once when a dir's content is written. */
const LSTAT_BATCH = 32

const ENTRY_TYPES: Partial<Record<number, EntryType>> = { [T.REG]: 'file', [T.DIR]: 'dir', [T.LNK]: 'symlink', [T.CHR]: 'chr', [T.BLK]: 'blk', [T.FIFO]: 'fifo' }

/** The names of an inode with several, as written so far. */
interface LinkGroup {
  first: string
  st: Stats
  written: Set<string>
}

class LayerExporter {
  private readonly groups = new Map<number, LinkGroup>()
  private bytes = 0

  constructor(private readonly fs: SnapshotFs, private readonly writer: LayerTarWriter, private readonly progress: ProgressFn | undefined) {}

  /** The object at `path` and, for a dir, everything below it. */
  async tree(path: string, st?: Stats): Promise<void> {
    st ??= await this.fs.lstat(path)
    await this.object(path, st)
    if (st.isDirectory()) await this.contents(path)
  }

  /** Everything below dir `path`, in name order. */
  private async contents(path: string): Promise<void> {
    const names = sortByName(await this.fs.readdir(path, { withFileTypes: true })).map((d) => joinPath(path, d.name))
    // a few lookups in flight at once overlap their store reads; the members go out in order
    for (let i = 0; i < names.length; i += LSTAT_BATCH) {
      const batch = names.slice(i, i + LSTAT_BATCH)
      const stats = await Promise.all(batch.map((p) => this.fs.lstat(p)))
      for (const [j, p] of batch.entries()) await this.tree(p, stats[j])
    }
  }

  /** The snapshot's own layer against its parent's tree. A view has no layer: nothing to write. */
  async changes(store: Store, r: SnapshotRecord): Promise<void> {
    if (!r.layer) return
    const ctx: NameiContext = { upper: new StoreLayer(r.layer, store.db), lower: await store.tree(r.parent), redirect: redirectConfig({}) }
    const root = rootNode(ctx)
    if (!sameAttrs(await nodeInode(ctx, root), await ctx.lower.inode(ctx.lower.root))) await this.object('/')
    await this.upperDir(ctx, root)
  }

  /** The entries of one upper dir: whiteouts first (OCI wants them before their siblings), then the rest. */
  private async upperDir(ctx: NameiContext, dir: OvlNode): Promise<void> {
    const entries = (await ctx.upper!.entries(dir.ino)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    for (const [name, e] of entries) if (isWhiteoutEntry(e)) await this.marker(whiteoutName(joinPath(dir.path, name)))
    for (const [name, e] of entries) {
      if (isWhiteoutEntry(e)) continue
      const node = (await lookupChild(ctx, dir, name)).node
      if (!node) continue
      if (!isDirType(node.type)) {
        await this.object(node.path)
        continue
      }
      // a dir whose lower part lies at another path was renamed here
      const moved = node.lower !== undefined && node.lowerPath !== node.path
      await this.object(node.path)
      if (node.opaque || (moved && (await this.parentHasDir(ctx, node.path)))) await this.marker(opaqueName(node.path))
      if (moved) {
        await this.contents(node.path)
      } else {
        await this.upperDir(ctx, node)
      }
    }
  }

  private async parentHasDir(ctx: NameiContext, path: string): Promise<boolean> {
    const found = await lowerPathLookup(ctx.lower, path.split('/').filter(Boolean))
    return found !== undefined && isDirType(found.type)
  }

  /** Writes the other names of inodes whose names are not all in the tar yet, as hard links. */
  async completeLinks(): Promise<void> {
    const wanted = new Map([...this.groups].filter(([, g]) => g.written.size < g.st.nlink))
    if (wanted.size === 0) return
    const walk = async (dir: string): Promise<void> => {
      for (const d of sortByName(await this.fs.readdir(dir, { withFileTypes: true }))) {
        if (wanted.size === 0) return
        const path = joinPath(dir, d.name)
        if (d.isDirectory()) {
          await walk(path)
          continue
        }
        const group = wanted.get(d.ino)
        if (!group || group.written.has(path)) continue
        await this.object(path)
        if (group.written.size >= group.st.nlink) wanted.delete(d.ino)
      }
    }
    await walk('/')
  }

  /** One member for the object at `path` (a dir without its content). */
  private async object(path: string, st?: Stats): Promise<void> {
    st ??= await this.fs.lstat(path)
    const type = ENTRY_TYPES[typeOf(st.mode)]
    if (!type) return // a socket
    if (isWhiteoutName(path.slice(path.lastIndexOf('/') + 1))) {
      throw fsError('EINVAL', SYSCALL, path, "a name starting with '.wh.' cannot be written to an OCI layer: readers take it for a whiteout")
    }
    const base = { mode: st.mode, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs, atimeNs: st.atimeNs }
    if (type !== 'dir' && st.nlink > 1) {
      const group = this.groups.get(st.ino)
      if (group) {
        group.written.add(path)
        await this.writer.add(tarHeader({ ...base, name: memberName(path, false), type: 'link', linkname: memberName(group.first, false) }))
        return
      }
      this.groups.set(st.ino, { first: path, st, written: new Set([path]) })
    }
    const header = tarHeader({
      ...base,
      name: memberName(path, type === 'dir'),
      type,
      size: st.size,
      linkname: type === 'symlink' ? await this.fs.readlink(path) : undefined,
      rdev: st.rdev,
      xattrs: await this.xattrs(path),
    })
    await this.writer.add(header, type === 'file' ? this.data(path, st.size) : undefined)
  }

  /** A whiteout or opaque marker: an empty file, its attributes meaningless (epoch, root's). */
  private marker(name: string): Promise<void> {
    return this.writer.add(tarHeader({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, atimeNs: 0n, size: 0 }))
  }

  private async xattrs(path: string): Promise<Record<string, Buffer> | undefined> {
    const out: Record<string, Buffer> = {}
    for (const name of await this.fs.listxattr(path, { follow: false })) {
      if (!isOverlayPrivateXattr(name)) out[name] = await this.fs.getxattr(path, name, { follow: false })
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  /** A file's bytes in IO_BYTES pieces, each a new buffer: the tar stream keeps what it is given. */
  private async *data(path: string, size: number): AsyncGenerator<Buffer> {
    const h = await this.fs.open(path, 'r')
    try {
      for (let pos = 0; pos < size;) {
        const buf = Buffer.allocUnsafe(Math.min(IO_BYTES, size - pos))
        const n = await readFull(h, buf, pos)
        if (n === 0) throw fsError('EIO', SYSCALL, path, 'file shrank while it was exported')
        yield n === buf.length ? buf : buf.subarray(0, n)
        pos += n
        this.bytes += n
        this.progress?.(this.bytes, undefined, path)
      }
    } finally {
      await h.close()
    }
  }
}

/** The attributes a member carries, compared (for the root, whose record every layer copies). */
function sameAttrs(a: InodeRecord, b: InodeRecord): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && toNs(a.mtime) === toNs(b.mtime) && toNs(a.atime) === toNs(b.atime) && sameXattrs(a.xattrs, b.xattrs)
}

const sortByName = <D extends { name: string }>(list: D[]): D[] => list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
