import { constants, type BigIntStats } from 'node:fs'
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { getAttribute, listAttributes } from 'fs-xattr'
import type { Store } from './store.js'
import type { SnapshotFs } from './snapshotfs.js'
import { StoreLayer } from './store/layer.js'
import type { HostStamp, InodeRecord } from './store/records.js'
import { CHUNK_SIZE, REF_SIZE, isHole } from './store/chunks.js'
import { loadRefs } from './store/filedata.js'
import { T, isDirType, joinPath, typeOf, type LowerNode, type LowerTree } from './overlay/node.js'
import { fromNs, toNs } from './overlay/stats.js'
import { FsError, StoreError, fsError, isCode, type ErrnoCode } from './errors.js'
import type { ProgressFn, SnapshotDirOptions, SnapshotInfo } from './types.js'

/**
 * Import of a host directory as a committed snapshot. The tree is written through the overlay
 * of a temporary active snapshot on the parent, so the new layer holds exactly what an overlay
 * mount would have recorded for the changes: new and rewritten files, whiteouts for removed
 * names, opaque dirs where a dir replaced something else. Regular files carry a host stamp
 * (`origin`); a file whose stamp still matches on the next import is not read again.
 */

/** Host reads (and snapshot reads on checkout) go in pieces of this size: 16 chunks. */
export const IO_BYTES = 16 * CHUNK_SIZE

interface HostEntry {
  name: string
  path: string
  /** dev:ino, exact (bigint) so distinct host inodes never compare equal. */
  key: string
  dev: number
  ino: number
  mode: number
  uid: number
  gid: number
  rdev: number
  size: number
  nlink: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  children?: HostEntry[]
}

type Xattrs = Record<string, Buffer>

export async function snapshotDir(store: Store, dir: string, opts: SnapshotDirOptions): Promise<SnapshotInfo> {
  if (typeof dir !== 'string' || dir === '') throw fsError('EINVAL', 'snapshotDir', String(dir), 'directory must be a non-empty path')
  if (typeof opts !== 'object' || opts === null) throw fsError('EINVAL', 'snapshotDir', dir, 'options with a snapshot name are required')
  const { name, parent = '', labels, progress } = opts
  await assertNameFree(store, name)
  if (parent !== '') {
    const p = await store.stat(parent)
    if (p.kind !== 'committed') throw fsError('EINVAL', 'snapshotDir', parent, `parent '${parent}' is ${p.kind}; only committed snapshots can be parents`)
  }
  checkLabels(labels, name)
  if (progress !== undefined && typeof progress !== 'function') throw fsError('EINVAL', 'snapshotDir', dir, 'progress must be a function')

  const rootPath = resolve(dir)
  const rootStat = await stat(rootPath, { bigint: true }).catch((err: unknown) => { throw hostError(err, 'snapshotDir', rootPath) })
  if (!rootStat.isDirectory()) throw fsError('ENOTDIR', 'snapshotDir', rootPath)
  const storeStat = await lstat(store.path, { bigint: true }).catch(() => undefined)
  const scan = new HostScan(storeStat ? hostKey(storeStat) : undefined)
  const root = await scan.tree(rootPath, rootStat).catch((err: unknown) => { throw hostError(err, 'snapshotDir', rootPath) })

  const tmpKey = `.import-${randomBytes(8).toString('hex')}`
  await store.prepare(tmpKey, parent)
  try {
    const layerId = (await store.record(tmpKey, 'snapshotDir')).layer!
    const fs = store.fs(tmpKey, { redirectDir: opts.redirectDir, redirectMax: opts.redirectMax, redirectAlwaysFollow: opts.redirectAlwaysFollow })
    const parentTree = parent === '' ? undefined : await store.tree(parent)
    const importer = new Importer(store, fs, new StoreLayer(layerId, store.db), parentTree, scan.bytes, progress)
    await importer.importDir(root, '/', parentTree?.root, false)
    await importer.restoreStamps()
    progress?.(importer.done, scan.bytes, rootPath)
    return await store.commit(name, tmpKey, { labels })
  } catch (err) {
    await store.remove(tmpKey).catch(() => undefined)
    throw hostError(err, 'snapshotDir', rootPath)
  }
}

async function assertNameFree(store: Store, name: unknown): Promise<void> {
  if (typeof name !== 'string' || name === '') throw fsError('EINVAL', 'snapshotDir', String(name), 'snapshot name must be a non-empty string')
  try {
    await store.stat(name)
  } catch (err) {
    if (isCode(err, 'ENOENT')) return
    throw err
  }
  throw fsError('EEXIST', 'snapshotDir', name, `snapshot '${name}' already exists`)
}

function checkLabels(labels: unknown, name: string): void {
  if (labels === undefined) return
  const bad = typeof labels !== 'object' || labels === null || Array.isArray(labels)
    || Object.entries(labels).some(([k, v]) => k === '' || typeof v !== 'string')
  if (bad) throw fsError('EINVAL', 'snapshotDir', name, 'labels must be an object of non-empty names and string values')
}

const hostKey = (st: BigIntStats): string => `${st.dev}:${st.ino}`
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The host tree, read once up front: what to import, and how many bytes of file data that is. */
class HostScan {
  bytes = 0
  private readonly counted = new Set<string>()

  constructor(private readonly skipKey: string | undefined) {}

  async tree(path: string, st: BigIntStats): Promise<HostEntry> {
    const root = entryOf('', path, st)
    await this.fill(root)
    return root
  }

  private async fill(dir: HostEntry): Promise<void> {
    const raw = await readdir(dir.path, { encoding: 'buffer' })
    const names = raw.map((b) => decodeName(b, dir.path)).sort()
    const children: HostEntry[] = []
    // a few stats in flight at once keep the thread pool busy without flooding it
    for (let i = 0; i < names.length; i += 32) {
      const batch = names.slice(i, i + 32)
      const stats = await Promise.all(batch.map((n) => lstat(join(dir.path, n), { bigint: true })))
      batch.forEach((n, j) => {
        if (hostKey(stats[j]) === this.skipKey) return // the store itself is not part of the tree
        children.push(entryOf(n, join(dir.path, n), stats[j]))
      })
    }
    dir.children = children
    for (const c of children) {
      const t = typeOf(c.mode)
      if (t === T.DIR) await this.fill(c)
      else if (t === T.REG && !this.counted.has(c.key)) {
        this.bytes += c.size
        if (c.nlink > 1) this.counted.add(c.key)
      }
    }
  }
}

function decodeName(raw: Buffer, dir: string): string {
  try {
    return utf8.decode(raw)
  } catch {
    throw fsError('EINVAL', 'snapshotDir', join(dir, raw.toString('latin1')), 'file name is not valid UTF-8; snapshot names are UTF-8 strings')
  }
}

function entryOf(name: string, path: string, st: BigIntStats): HostEntry {
  return {
    name, path, key: hostKey(st), dev: Number(st.dev), ino: Number(st.ino),
    mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), rdev: Number(st.rdev), size: Number(st.size), nlink: Number(st.nlink),
    atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
  }
}

const stampOf = (e: HostEntry): HostStamp => [e.dev, e.ino, e.size, e.mtimeNs.toString(), e.ctimeNs.toString()]

/** The stamp says the content is what was imported: same inode, size and mtime. */
const sameContentStamp = (o: HostStamp, e: HostEntry): boolean =>
  o[0] === e.dev && o[1] === e.ino && o[2] === e.size && o[3] === e.mtimeNs.toString()

/**
 * Extended attributes of a host file in every namespace the caller may read. Symlinks have none
 * here: the xattr binding follows symlinks, so it would report the target's. The overlay's own
 * `trusted.overlay.*` (present when the host dir is an overlay layer) are not file data.
 */
export async function readHostXattrs(path: string, type: number): Promise<Xattrs | undefined> {
  if (type === T.LNK) return undefined
  let names: string[]
  try {
    names = await listAttributes(path)
  } catch (err) {
    if (isCode(err, 'ENOTSUP') || isCode(err, 'EOPNOTSUPP')) return {}
    throw hostError(err, 'listxattr', path)
  }
  const out: Xattrs = {}
  for (const n of names.sort()) {
    if (n.startsWith('trusted.overlay.')) continue
    try {
      out[n] = await getAttribute(path, n)
    } catch (err) {
      if (isCode(err, 'ENODATA')) continue // removed since it was listed
      throw hostError(err, 'getxattr', path)
    }
  }
  return out
}

export function sameXattrs(a: Xattrs | undefined, b: Xattrs | undefined): boolean {
  const ka = Object.keys(a ?? {}).sort()
  const kb = Object.keys(b ?? {}).sort()
  if (ka.length !== kb.length) return false
  return ka.every((k, i) => k === kb[i] && Buffer.from(a![k]).equals(Buffer.from(b![k])))
}

/** Attributes the host shows, against a record; atime alone is not a change (reads move it). */
function sameAttrs(rec: InodeRecord, e: HostEntry, xattrs: Xattrs | undefined): boolean {
  return rec.mode === e.mode && rec.uid === e.uid && rec.gid === e.gid && sameMtime(toNs(rec.mtime), e.mtimeNs)
    && (xattrs === undefined || sameXattrs(rec.xattrs, xattrs))
}

/**
 * A host mtime equal to the stored one cut to whole microseconds is the stored one as checkout
 * wrote it (Node sets times to the microsecond): a tree checked out and imported again is
 * unchanged, not touched everywhere.
 */
const sameMtime = (stored: bigint, host: bigint): boolean => stored === host || (host % 1000n === 0n && stored >= 0n && stored - (stored % 1000n) === host)

async function readHostLink(path: string): Promise<string> {
  const raw = await readlink(path, { encoding: 'buffer' })
  try {
    return utf8.decode(raw)
  } catch {
    throw fsError('EINVAL', 'snapshotDir', path, 'symlink target is not valid UTF-8')
  }
}

class Importer {
  done = 0
  /** Host inodes with several names: where the first name went, and its inode in the snapshot. */
  private readonly linkGroups = new Map<string, { path: string; ino: number }>()
  /** Hard-linked parent inodes kept for a host inode; another host inode may not keep them too. */
  private readonly claims = new Map<number, string>()
  /**
   * Kept files that a link or unlink of another name may copy up during the import; a copy-up
   * drops the host stamp, which must then be written again.
   */
  private readonly keptLinked = new Map<number, HostEntry>()
  private readonly buffers: Buffer[] = []

  constructor(
    private readonly store: Store,
    private readonly fs: SnapshotFs,
    private readonly layer: StoreLayer,
    private readonly parent: LowerTree | undefined,
    private readonly total: number,
    private readonly progress: ProgressFn | undefined,
  ) {}

  /**
   * Makes the snapshot dir at `path` equal the host dir. `lower` is the parent's dir at the same
   * path when the two are merged; `created` when the dir was just made here.
   */
  async importDir(host: HostEntry, path: string, lower: LowerNode | undefined, created: boolean): Promise<void> {
    const lowerChildren = new Map(lower && this.parent ? await this.parent.list(lower) : [])
    const present = new Set(host.children!.map((c) => c.name))
    for (const name of lowerChildren.keys()) if (!present.has(name)) await this.removeTree(joinPath(path, name))
    const one = (c: HostEntry): Promise<void> => this.importEntry(c, joinPath(path, c.name), lowerChildren.get(c.name))
    // Files with one name are independent of each other: several at once hide the latency of
    // each one's host reads and store lookups. Hard-linked ones go in order (the first name is
    // made first), dirs one by one so that the number of files in flight stays bounded.
    const [single, rest] = partition(host.children!, (c) => typeOf(c.mode) !== T.DIR && c.nlink === 1)
    await forEachLimit(single, IMPORT_CONCURRENCY, one)
    for (const child of rest) await one(child)
    // last: making and removing children has moved the dir's mtime
    const xattrs = await readHostXattrs(host.path, T.DIR)
    if (!created) {
      const ino = (await this.fs.lstat(path)).ino
      const rec = (await this.layer.inode(ino)) ?? (lower && this.parent ? await this.parent.inode(lower) : undefined)
      if (rec && sameAttrs(rec, host, xattrs)) return
    }
    await this.setAttrs(path, host, xattrs)
  }

  private async importEntry(e: HostEntry, path: string, lower: LowerNode | undefined): Promise<void> {
    const type = typeOf(e.mode)
    if (type === T.DIR) {
      if (lower && isDirType(lower.type)) return this.importDir(e, path, lower, false)
      if (lower) await this.removeTree(path)
      await this.fs.mkdir(path, 0o700)
      return this.importDir(e, path, undefined, true)
    }
    const group = e.nlink > 1 ? this.linkGroups.get(e.key) : undefined
    if (group) {
      if (lower?.ino !== group.ino) {
        if (lower) await this.removeTree(path)
        await this.fs.link(group.path, path)
      }
      return
    }
    let ino: number
    if (lower && !isDirType(lower.type) && (await this.keep(e, path, lower))) {
      ino = lower.ino
    } else {
      if (lower) await this.removeTree(path)
      ino = await this.create(e, path)
    }
    if (e.nlink > 1) this.linkGroups.set(e.key, { path, ino })
    if (type === T.REG) this.advance(e.size, e.path)
  }

  /**
   * Keeps the parent's object at this name when the host object is the same: for a regular file
   * by its host stamp (the data is not read), else by target or device number. Attributes that
   * changed are updated on the kept inode.
   */
  private async keep(e: HostEntry, path: string, lower: LowerNode): Promise<boolean> {
    const rec = await this.parent!.inode(lower)
    const type = typeOf(e.mode)
    if (typeOf(rec.mode) !== type) return false
    let claimed = false
    if (rec.nlink > 1) {
      const owner = this.claims.get(lower.ino)
      if (owner !== undefined && owner !== e.key) return false
      // claimed before anything else is awaited: another name may be looked at meanwhile
      if (owner === undefined) this.claims.set(lower.ino, e.key)
      claimed = owner === undefined
    }
    const kept = await this.sameObject(e, path, rec)
    if (!kept && claimed) this.claims.delete(lower.ino)
    if (kept && type === T.REG && (rec.nlink > 1 || e.nlink > 1)) this.keptLinked.set(lower.ino, e)
    return kept
  }

  /** The host object is the parent's one, content-wise; attributes that differ are brought up to date. */
  private async sameObject(e: HostEntry, path: string, rec: InodeRecord): Promise<boolean> {
    const type = typeOf(e.mode)
    let attrsUnchanged = false
    if (type === T.REG) {
      if (rec.origin && sameContentStamp(rec.origin, e)) {
        // ctime moves with every attribute change: equal means nothing at all changed
        attrsUnchanged = rec.origin[4] === e.ctimeNs.toString()
      } else if (rec.size !== e.size || !(await this.sameData(e, rec))) {
        return false
      }
    } else if (type === T.LNK) {
      if (rec.target !== (await readHostLink(e.path))) return false
    } else if (type === T.CHR || type === T.BLK) {
      if (rec.rdev !== e.rdev) return false
    }
    if (!attrsUnchanged) {
      const xattrs = await readHostXattrs(e.path, type)
      if (!sameAttrs(rec, e, xattrs)) await this.setAttrs(path, e, xattrs, type === T.REG ? stampOf(e) : undefined)
    }
    return true
  }

  /**
   * Whether the host file holds the parent file's bytes, for files without a matching stamp (a
   * tree checked out and edited elsewhere has new inodes): reading and comparing costs no layer
   * record, where storing the file again would. Stops at the first difference.
   */
  private async sameData(e: HostEntry, rec: InodeRecord): Promise<boolean> {
    const refs = rec.inline ? undefined : await loadRefs(rec, this.store.chunks, e.path)
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    const src = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      for (let pos = 0; pos < e.size; pos += IO_BYTES) {
        const n = await readFull(src, buf, pos)
        if (n !== Math.min(IO_BYTES, e.size - pos)) return false
        if (rec.inline) return buf.subarray(0, n).equals(rec.inline)
        const first = pos / CHUNK_SIZE
        const count = Math.ceil(n / CHUNK_SIZE)
        const wanted = Array.from({ length: count }, (_, i) => refs!.subarray((first + i) * REF_SIZE, (first + i + 1) * REF_SIZE))
        if (wanted.some((r) => r.length < REF_SIZE)) return false
        const stored = await this.store.chunks.getMany(wanted.filter((r) => !isHole(r)), e.path)
        for (let i = 0; i < count; i++) {
          const mine = buf.subarray(i * CHUNK_SIZE, Math.min(n, (i + 1) * CHUNK_SIZE))
          const theirs = isHole(wanted[i]) ? ZERO_CHUNK : stored.shift()!
          // a stored chunk may be short: the bytes past its end read as zeroes
          const head = Math.min(mine.length, theirs.length)
          if (!mine.subarray(0, head).equals(theirs.subarray(0, head))) return false
          if (!mine.subarray(head).equals(ZERO_CHUNK.subarray(0, mine.length - head))) return false
        }
      }
      return (await src.read(buf, 0, 1, e.size)).bytesRead === 0 // and it has not grown since
    } finally {
      await src.close()
      this.buffers.push(buf)
    }
  }

  /** Puts back the host stamps that copy-ups of kept hard-linked files dropped. */
  async restoreStamps(): Promise<void> {
    for (const [ino, e] of this.keptLinked) {
      await this.store.lock.run(async () => {
        const rec = await this.layer.inode(ino)
        const stamp = stampOf(e)
        if (!rec || (rec.origin && rec.origin.every((v, i) => v === stamp[i]))) return
        const txn = this.store.db.txn()
        this.layer.putInode(txn, ino, { ...rec, origin: stamp })
        await txn.commit()
      })
    }
  }

  /** Creates the host object at `path` (nothing is there now); returns its inode number. */
  private async create(e: HostEntry, path: string): Promise<number> {
    const type = typeOf(e.mode)
    switch (type) {
      case T.REG: {
        const ino = await this.copyData(e, path)
        return this.setAttrs(path, e, await readHostXattrs(e.path, type), stampOf(e), ino)
      }
      case T.LNK:
        await this.fs.symlink(await readHostLink(e.path), path)
        return this.setAttrs(path, e, undefined)
      case T.CHR: case T.BLK: case T.FIFO: case T.SOCK:
        await this.fs.mknod(path, e.mode, e.rdev)
        return this.setAttrs(path, e, await readHostXattrs(e.path, type))
      default:
        throw fsError('ENOTSUP', 'snapshotDir', e.path, `file type ${type.toString(8)} cannot be stored`)
    }
  }

  /** Copies the host file's data in large pieces; all-zero chunks are skipped and stay holes. */
  private async copyData(e: HostEntry, path: string): Promise<number> {
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    const src = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const dst = await this.fs.open(path, 'wx', 0o600)
      try {
        let pos = 0
        let since = 0
        for (;;) {
          const n = await readFull(src, buf, pos)
          if (n === 0) break
          await writeNonZeroRuns(buf, n, pos, (off, len, at) => dst.write(buf, off, len, at))
          pos += n
          if ((since += n) >= 64 * IO_BYTES) {
            this.progress?.(this.done + pos, this.total, e.path)
            since = 0
          }
          if (n < buf.length) break
        }
        const st = await dst.stat()
        if (st.size < pos) await dst.truncate(pos) // trailing zeroes: a hole to the end
        return st.ino
      } finally {
        await dst.close()
      }
    } finally {
      await src.close()
      this.buffers.push(buf)
    }
  }

  /**
   * Sets every attribute of the host object on the snapshot's inode in one record write:
   * mode with its special bits, owner, times to the nanosecond, xattrs (undefined: keep those
   * stored) and the host stamp. Copies the inode up first if the import layer lacks it.
   */
  private async setAttrs(path: string, e: HostEntry, xattrs: Xattrs | undefined, origin?: HostStamp, knownIno?: number): Promise<number> {
    const ino = knownIno ?? (await this.fs.lstat(path)).ino
    // a file just made here is in the layer already
    if (knownIno === undefined && !(await this.layer.inode(ino))) await this.fs.lutimes(path, e.atimeNs, e.mtimeNs)
    await this.store.lock.run(async () => {
      const rec = await this.layer.inode(ino)
      if (!rec) throw fsError('EIO', 'snapshotDir', path, `inode ${ino} is missing from the import layer`)
      const next: InodeRecord = {
        ...rec, mode: e.mode, uid: e.uid, gid: e.gid, atime: fromNs(e.atimeNs), mtime: fromNs(e.mtimeNs),
        xattrs: xattrs === undefined ? rec.xattrs : Object.keys(xattrs).length > 0 ? xattrs : undefined,
        origin,
      }
      const txn = this.store.db.txn()
      this.layer.putInode(txn, ino, next)
      await txn.commit()
    })
    return ino
  }

  /** Removes a name and everything below it; names of the parent leave whiteouts. */
  private async removeTree(path: string): Promise<void> {
    if ((await this.fs.lstat(path)).isDirectory()) {
      for (const name of await this.fs.readdir(path)) await this.removeTree(joinPath(path, name))
      await this.fs.rmdir(path)
    } else {
      await this.fs.unlink(path)
    }
  }

  private advance(bytes: number, path: string): void {
    this.done += bytes
    this.progress?.(this.done, this.total, path)
  }
}

/** Files imported at once within one dir. */
const IMPORT_CONCURRENCY = 8

function partition<T>(items: T[], test: (t: T) => boolean): [T[], T[]] {
  const yes: T[] = []
  const no: T[] = []
  for (const t of items) (test(t) ? yes : no).push(t)
  return [yes, no]
}

/**
 * Runs `fn` on every item, at most `limit` at a time. After a failure no new item starts, and
 * the first error is thrown once the running ones have settled (none is left half done).
 */
export async function forEachLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]
      try {
        await fn(item)
      } catch (err) {
        failed ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failed) throw failed.err
}

/** Reads until `buf` is full or the file ends; returns the bytes read. */
export async function readFull(file: { read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }> }, buf: Buffer, pos: number): Promise<number> {
  let got = 0
  while (got < buf.length) {
    const { bytesRead } = await file.read(buf, got, buf.length - got, pos + got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return got
}

const ZERO_CHUNK = Buffer.alloc(CHUNK_SIZE)

/**
 * Writes `buf[0, length)` (file data at `position`, a multiple of CHUNK_SIZE) except its all-zero
 * chunks, in runs of consecutive non-zero chunks. What is skipped stays a hole in the target.
 */
export async function writeNonZeroRuns(buf: Buffer, length: number, position: number, write: (offset: number, length: number, position: number) => Promise<unknown>): Promise<void> {
  let runStart = -1
  for (let off = 0; off < length; off += CHUNK_SIZE) {
    const end = Math.min(length, off + CHUNK_SIZE)
    const zero = buf.subarray(off, end).equals(ZERO_CHUNK.subarray(0, end - off))
    if (!zero && runStart < 0) runStart = off
    if (zero && runStart >= 0) {
      await write(runStart, off - runStart, position + runStart)
      runStart = -1
    }
  }
  if (runStart >= 0) await write(runStart, length - runStart, position + runStart)
}

const ERRNO_CODES = new Set<string>([
  'ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EXDEV', 'ENAMETOOLONG', 'EINVAL', 'EACCES', 'EPERM', 'EROFS',
  'EBADF', 'EBUSY', 'ELOOP', 'EMLINK', 'ENODATA', 'ERANGE', 'ENOTSUP', 'EFBIG', 'ESTALE', 'EIO',
] satisfies ErrnoCode[])

/**
 * A host I/O error as an FsError, keeping its errno name and path; codes the engine does not
 * name (ENOSPC...) become EIO with the original message. Engine errors pass through.
 */
export function hostError(err: unknown, syscall: string, path: string): unknown {
  if (err instanceof FsError || err instanceof StoreError) return err
  const e = err as { code?: unknown; path?: unknown; syscall?: unknown; message?: unknown }
  if (typeof e?.code !== 'string') return err
  const where = typeof e.path === 'string' ? e.path : path
  const call = typeof e.syscall === 'string' ? e.syscall : syscall
  const code = e.code === 'EOPNOTSUPP' ? 'ENOTSUP' : e.code
  if (ERRNO_CODES.has(code)) return fsError(code as ErrnoCode, call, where)
  return fsError('EIO', call, where, String(e.message))
}
