import { lstatSync, readdirSync, type BigIntStats } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { join, normalize } from 'node:path'
import { getAttributeSync } from 'fs-xattr'
import type { EntryRecord, InodeRecord } from '../store/records.js'
import { ROOT_INO, WHITEOUT } from '../store/records.js'
import { T, isDirType, typeOf, type ProbeAnswer, type UpperLayer } from '../overlay/node.js'
import { isWhiteoutDevice, isXattrWhiteout, overlayXattrNames, parseOpaqueXattr, type OverlayXattrNames } from '../overlay/whiteout.js'
import { fromNs } from '../overlay/stats.js'
import { readHostXattrs, type Xattrs } from '../host/xattrs.js'
import { hostKey, readHostLinkSync } from '../host/scan.js'
import { hostError } from '../host/io.js'
import { isCode } from '../errors.js'
import { freezeRecord, recordBytes } from '../store/recordcache.js'
import { HostReadCache } from './hostcache.js'

export interface DirLayerOptions {
  /** Overlay xattrs under `user.overlay.` instead of `trusted.overlay.`, as the kernel's option. */
  userxattr?: boolean
  /** Numbers for the objects met (see inos.ts). */
  allocIno: () => number
  /**
   * Keep what is read of the host for the life of the layer (hostcache.ts). Only for a dir that
   * nothing changes while the layer is open, which the kernel requires of lower dirs. Default: on
   * for a DirLayer itself, off for a subclass: a DirUpper writes its dir and reads it exactly.
   */
  cacheHostReads?: boolean
  /**
   * A blocking lookup slower than this (ns) is taken to have waited on the disk, so the layers
   * below are probed in the pool (StackedTree.probeLayers). Default WAITED_NS; 0 always.
   */
  waitedNs?: bigint
}

/** What a layer that keeps its reads knows of one of its dirs. */
interface KeptDir {
  /** Every name of the dir, once it was read whole (empty if it has gone). */
  listing?: ReadonlyArray<[string, EntryRecord]>
  /** Until then, the names looked up: their entries, or undefined where nothing is. */
  names: Map<string, EntryRecord | undefined>
  /** Names whose lookup `probe` started and that have not answered yet. */
  probing?: Map<string, Promise<Probed>>
  /** Estimated heap bytes, for the cache's bound. */
  bytes: number
}

/**
 * A blocking lstat that took this long waited for the disk: from the page cache it takes a few
 * microseconds, a read from the device a hundred or more.
 */
const WAITED_NS = 100_000n

/** An error that says nothing is at the path (or a dir on the way is not one). */
const isGone = (err: unknown): boolean => isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')

/** What a probe found, or AGAIN: it failed, and entry() reads again to throw the error itself. */
const AGAIN = Symbol('again')
type Probed = EntryRecord | undefined | typeof AGAIN

/**
 * What a record holds of an object besides its lstat: its xattrs, the overlay's markers, a
 * symlink's target. An upper keeps it while the object's host inode and ctime stay the same:
 * every change of an xattr advances the ctime.
 */
interface HostAttrs {
  key: string
  ctimeNs: bigint
  xattrs?: Xattrs
  opaque?: true
  redirect?: string
  target?: string
}

/** Where an object of the layer is: one of its names (the newest seen). */
interface NameRef {
  dir: number
  name: string
}

/**
 * A directory in the kernel's overlay on-disk format, read as a layer's raw records: its names
 * by directory, whiteouts as whiteout entries, opaque and redirect xattrs as the dir inode's
 * flags. Objects get inode numbers as lookups meet them, the layer root being ROOT_INO, so the
 * overlay rules address it exactly as they address a store layer. A lower layer keeps what it
 * read of the host for its life (see `entry`), as a lookup in a deep stack probes every layer.
 */
export class DirLayer implements UpperLayer {
  readonly id: string
  protected readonly xattr: OverlayXattrNames
  /** ino → its names met so far, newest last; the root has none. */
  protected readonly names = new Map<number, NameRef[]>()
  /** `dir\0name` → the ino met there. */
  private readonly at = new Map<string, number>()
  /** Host inode (dev:ino) → the layer's inode number. */
  private readonly byHost = new Map<string, number>()
  /** The other way: ino → its host inode. */
  private readonly hostOf = new Map<number, string>()
  /** Objects set aside (in the work dir) during one transaction. */
  protected readonly aside = new Map<number, string>()
  /** What was read of the host, when the dir does not change under the layer. */
  private readonly hostCache?: HostReadCache
  /** Otherwise (an upper read exactly), the objects' xattrs and targets, checked before each use. */
  private readonly attrCache?: HostReadCache

  /** The root as join() leaves it, for building paths under it. */
  private readonly normalRoot: string

  constructor(readonly root: string, protected readonly opts: DirLayerOptions) {
    this.id = root
    this.normalRoot = normalize(root)
    this.xattr = overlayXattrNames(opts.userxattr)
    if (opts.cacheHostReads ?? new.target === DirLayer) this.hostCache = new HostReadCache()
    else this.attrCache = new HostReadCache()
  }

  /** The host path of an object met before, or undefined. */
  pathOf(ino: number): string | undefined {
    return ino === ROOT_INO && !this.aside.has(ino) ? this.root : this.prefixOf(ino)
  }

  /** pathOf, normalized as join() leaves it: what the paths of a dir's names start with. */
  protected prefixOf(ino: number): string | undefined {
    const set = this.aside.get(ino)
    if (set !== undefined) return set
    if (ino === ROOT_INO) return this.normalRoot
    const refs = this.names.get(ino)
    const ref = refs?.[refs.length - 1]
    if (!ref) return undefined
    const dir = this.prefixOf(ref.dir)
    return dir === undefined ? undefined : childPath(dir, ref.name)
  }

  /** The layer gave number `ino` to an object it met (pathOf without building the path). */
  private knows(ino: number): boolean {
    return ino === ROOT_INO || this.names.has(ino) || this.aside.has(ino)
  }

  /** The layer's number for host inode `key` (dev:ino), remembering `dir/name` as where it is. */
  protected bind(key: string, dir: number, name: string): number {
    const ino = this.byHost.get(key) ?? this.opts.allocIno()
    this.tie(key, ino)
    this.remember(ino, dir, name)
    return ino
  }

  /** Host inode `key` (dev:ino) is the layer's inode `ino`. */
  protected tie(key: string, ino: number): void {
    this.byHost.set(key, ino)
    this.hostOf.set(ino, key)
  }

  /** The layer's inode at host inode `key`, if met. */
  protected inoAt(key: string): number | undefined {
    return this.byHost.get(key)
  }

  /** The inode is gone: its names and its host inode are forgotten. */
  protected forget(ino: number): void {
    this.changedAttrs(ino)
    for (const ref of this.names.get(ino) ?? []) this.dropName(ref.dir, ref.name)
    const key = this.hostOf.get(ino)
    if (key !== undefined && this.byHost.get(key) === ino) this.byHost.delete(key)
    this.hostOf.delete(ino)
  }

  /** Records that `dir/name` is (now) a name of `ino`. */
  protected remember(ino: number, dir: number, name: string): void {
    const key = `${dir}\0${name}`
    const before = this.at.get(key)
    if (before !== undefined && before !== ino) this.dropName(dir, name)
    this.at.set(key, ino)
    const refs = (this.names.get(ino) ?? []).filter((r) => r.dir !== dir || r.name !== name)
    refs.push({ dir, name })
    this.names.set(ino, refs)
  }

  /** `dir/name` names nothing any more. */
  protected dropName(dir: number, name: string): void {
    const key = `${dir}\0${name}`
    const ino = this.at.get(key)
    if (ino === undefined) return
    this.at.delete(key)
    const refs = (this.names.get(ino) ?? []).filter((r) => r.dir !== dir || r.name !== name)
    if (refs.length > 0) this.names.set(ino, refs)
    else this.names.delete(ino)
  }

  /**
   * Host metadata calls block: on a local dir they take microseconds, a tenth of a trip through
   * libuv's thread pool, and a path walk makes several per component.
   */
  protected lstatOrUndefined(path: string): BigIntStats | undefined {
    try {
      return lstatSync(path, { bigint: true, throwIfNoEntry: false })
    } catch (err) {
      if (isGone(err)) return undefined
      throw hostError(err, 'lstat', path)
    }
  }

  /** What lstat showed of dirs in this turn of the event loop (see lookupStat): an upper's only. */
  private dirStatsThisTurn?: Map<string, BigIntStats>

  /**
   * lstat for lookups. A layer that reads its host exactly (an upper) still walks each dir of a
   * path twice, once to find its name and once to read its record (opaque? redirect?): the second
   * is answered from the first within one turn of the event loop, in which a FUSE request is
   * served when the host answers at once. Host changes made from outside show from the next turn
   * on; the layer's own changes forget what was seen (forgetThisTurn). Only dirs: a file's size
   * and times also change through its open data, which no lookup sees.
   */
  protected lookupStat(path: string): BigIntStats | undefined {
    if (this.hostCache) return this.lstatOrUndefined(path)
    const seen = this.dirStatsThisTurn?.get(path)
    if (seen) return seen
    const st = this.lstatOrUndefined(path)
    if (st && typeOf(Number(st.mode)) === T.DIR) {
      if (!this.dirStatsThisTurn) {
        this.dirStatsThisTurn = new Map()
        setImmediate(() => this.forgetThisTurn())
      }
      this.dirStatsThisTurn.set(path, st)
    }
    return st
  }

  /** What lookupStat saw goes: the turn ended, or the layer changed its host. */
  protected forgetThisTurn(): void {
    this.dirStatsThisTurn = undefined
  }

  protected getXattr(path: string, name: string): Buffer | undefined {
    try {
      return getAttributeSync(path, name)
    } catch (err) {
      if (isCode(err, 'ENODATA') || isCode(err, 'ENOTSUP') || isCode(err, 'EOPNOTSUPP') || isCode(err, 'ENOENT')) return undefined
      throw hostError(err, 'getxattr', path)
    }
  }

  private classify(st: BigIntStats, path: string, dir: number, name: string): EntryRecord {
    const mode = Number(st.mode)
    if (isWhiteoutDevice(mode, Number(st.rdev))) return WHITEOUT
    if (st.size === 0n && isXattrWhiteout(mode, 0, this.getXattr(path, this.xattr.whiteout) !== undefined)) return WHITEOUT
    return [this.bind(hostKey(st), dir, name), typeOf(mode)]
  }

  /*
   * A layer that keeps its reads keys them by its own numbers (`d<dir>`: what is known of one
   * dir; `r<ino>`: a record), which stay bound to the same host objects for the life of the
   * layer: a hit builds no path. One entry per dir holds its listing once read, else the names
   * looked up in it, found or not, so a probe of a name the dir lacks (most probes of a deep
   * stack) is one cache read.
   */

  async entry(dirIno: number, name: string): Promise<EntryRecord | undefined> {
    const cache = this.hostCache
    if (!cache || !this.knows(dirIno)) return this.readEntry(dirIno, name)
    const dir = this.keptDir(cache, dirIno)
    if (dir.listing) return findEntry(dir.listing, name)
    if (dir.names.has(name)) return dir.names.get(name)
    const probed = dir.probing?.get(name)
    if (probed) {
      const e = await probed
      if (e !== AGAIN) return e
    }
    const e = this.readEntry(dirIno, name)
    this.keepName(cache, dir, dirIno, name, e)
    return e
  }

  /**
   * Looks `name` up in dir `dirIno` ahead of an entry() call (see UpperLayer.probe): at once,
   * timing the call, or with `inPool` in libuv's pool, the answer kept when it comes. Only a
   * layer that keeps its reads probes, so what a probe finds serves the entry() that follows.
   */
  probe(dirIno: number, name: string, inPool: boolean): ProbeAnswer | undefined {
    const cache = this.hostCache
    if (!cache || !this.knows(dirIno)) return undefined
    const dir = this.keptDir(cache, dirIno)
    if (dir.listing) return { entry: findEntry(dir.listing, name), waited: false }
    if (dir.names.has(name)) return { entry: dir.names.get(name), waited: false }
    if (dir.probing?.has(name)) return undefined
    if (inPool) {
      this.probeInPool(cache, dir, dirIno, name)
      return undefined
    }
    const path = this.childOf(dirIno, name)
    if (path === undefined) return undefined
    let entry: EntryRecord | undefined
    let waited = false
    try {
      // only the call to the host is timed: the first calls of a fresh process also compile code
      const t0 = process.hrtime.bigint()
      const st = this.lstatOrUndefined(path)
      waited = process.hrtime.bigint() - t0 >= (this.opts.waitedNs ?? WAITED_NS)
      entry = st && this.lookedUp(st, path, dirIno, name)
    } catch {
      return undefined // entry() reads again and throws
    }
    this.keepName(cache, dir, dirIno, name, entry)
    return { entry, waited }
  }

  /** The lookup of probe() in libuv's pool; entry() awaits it. */
  private probeInPool(cache: HostReadCache, dir: KeptDir, dirIno: number, name: string): void {
    const path = this.childOf(dirIno, name)
    if (path === undefined) return
    // an error is left for entry() to meet again, reading at once, and to throw as its own
    const answer = (found: () => EntryRecord | undefined): Probed => {
      dir.probing?.delete(name)
      try {
        const e = found()
        this.keepName(cache, dir, dirIno, name, e)
        return e
      } catch {
        return AGAIN
      }
    }
    const missing = (err: unknown): undefined => {
      if (isGone(err)) return undefined
      throw err
    }
    // never rejects: a probe that no lookup awaits must not end as an unhandled rejection
    const probed = lstat(path, { bigint: true }).then(
      (st) => answer(() => this.lookedUp(st, path, dirIno, name)),
      (err: unknown) => answer(() => missing(err)),
    )
    ;(dir.probing ??= new Map()).set(name, probed)
  }

  /** Keeps what a lookup found of `name` (or that nothing is there) in the dir's kept names. */
  private keepName(cache: HostReadCache, dir: KeptDir, dirIno: number, name: string, e: EntryRecord | undefined): void {
    // a listing made meanwhile answers already; a dir the LRU dropped is not brought back
    if (dir.listing || dir.names.has(name) || cache.get(`d${dirIno}`) !== dir) return
    dir.names.set(name, e)
    dir.bytes += 64 + 2 * name.length
    cache.set(`d${dirIno}`, dir, dir.bytes)
  }

  private keptDir(cache: HostReadCache, dirIno: number): KeptDir {
    return cache.get<KeptDir>(`d${dirIno}`) ?? cache.set(`d${dirIno}`, { names: new Map(), bytes: 96 }, 96)
  }

  /** The host path of `name` in dir `dirIno`, if the layer met the dir. */
  private childOf(dirIno: number, name: string): string | undefined {
    const dirPath = this.prefixOf(dirIno)
    return dirPath === undefined ? undefined : childPath(dirPath, name)
  }

  private readEntry(dirIno: number, name: string): EntryRecord | undefined {
    const path = this.childOf(dirIno, name)
    if (path === undefined) return undefined
    const st = this.lookupStat(path)
    if (!st) return undefined
    return this.lookedUp(st, path, dirIno, name)
  }

  /**
   * The entry of an object a lookup met. A layer that keeps its reads also keeps a dir's record,
   * made from the same lstat: a walk reads the record of every dir it meets (opaque? redirect?),
   * which would take a second lstat per layer.
   */
  private lookedUp(st: BigIntStats, path: string, dirIno: number, name: string): EntryRecord {
    const e = this.classify(st, path, dirIno, name)
    const cache = this.hostCache
    if (cache && e[1] === T.DIR && !cache.get(`r${e[0]}`)) {
      const rec = this.record(st, path, e[0])
      cache.set(`r${e[0]}`, freezeRecord(rec), recordBytes(rec))
    }
    return e
  }

  /** An upper's own change of an object: what it kept of it goes. */
  protected changedAttrs(ino: number): void {
    this.attrCache?.delete(`a${ino}`)
  }

  /** The names of a dir, whiteouts included, sorted; a kept listing is shared (frozen). */
  async entries(dirIno: number): Promise<Array<[string, EntryRecord]>> {
    const cache = this.hostCache
    if (!cache || !this.knows(dirIno)) return this.readEntries(dirIno) ?? []
    const dir = this.keptDir(cache, dirIno)
    if (!dir.listing) {
      dir.listing = Object.freeze(this.readEntries(dirIno) ?? [])
      // the listing answers every lookup from now on
      dir.names.clear()
      dir.bytes = dir.listing.reduce((n, [name]) => n + 96 + 2 * name.length, 96)
      cache.set(`d${dirIno}`, dir, dir.bytes)
    }
    return dir.listing as Array<[string, EntryRecord]>
  }

  /** Undefined when the dir is gone or not a dir. */
  private readEntries(dirIno: number): Array<[string, EntryRecord]> | undefined {
    const dirPath = this.pathOf(dirIno)
    if (dirPath === undefined) return undefined
    let names: string[]
    try {
      names = readdirSync(dirPath)
    } catch (err) {
      if (isGone(err)) return undefined
      throw hostError(err, 'readdir', dirPath)
    }
    const out: Array<[string, EntryRecord]> = []
    const prefix = this.prefixOf(dirIno)!
    for (const name of names.sort()) {
      const path = childPath(prefix, name)
      const st = this.lstatOrUndefined(path)
      if (st) out.push([name, this.classify(st, path, dirIno, name)])
    }
    return out
  }

  /** The record of an object; a kept one is shared by every reader (frozen). */
  async inode(ino: number): Promise<InodeRecord | undefined> {
    const cache = this.hostCache
    if (!cache) return this.readInode(ino)
    const hit = cache.get<InodeRecord>(`r${ino}`)
    if (hit) return hit
    // Numbers this layer never gave (another layer's objects) are answered without keeping anything.
    const rec = this.readInode(ino)
    return rec && cache.set(`r${ino}`, freezeRecord(rec), recordBytes(rec))
  }

  private readInode(ino: number): InodeRecord | undefined {
    const path = this.pathOf(ino)
    if (path === undefined) return undefined
    const st = this.lookupStat(path)
    if (!st) return undefined
    return this.record(st, path, ino)
  }

  /** The inode record of a host object, as a store layer would hold it. */
  protected record(st: BigIntStats, path: string, ino: number): InodeRecord {
    const mode = Number(st.mode)
    const type = typeOf(mode)
    const rec: InodeRecord = {
      mode,
      uid: Number(st.uid),
      gid: Number(st.gid),
      rdev: Number(st.rdev),
      size: type === T.DIR ? 4096 : Number(st.size),
      nlink: Number(st.nlink),
      atime: fromNs(st.atimeNs),
      mtime: fromNs(st.mtimeNs),
      ctime: fromNs(st.ctimeNs),
    }
    const attrs = this.attrsOf(st, path, type, ino)
    if (attrs.xattrs) rec.xattrs = { ...attrs.xattrs }
    if (attrs.target !== undefined) rec.target = attrs.target
    if (type === T.REG) rec.hostPath = path
    if (attrs.opaque) rec.opaque = true
    if (attrs.redirect !== undefined) rec.redirect = attrs.redirect
    return rec
  }

  private attrsOf(st: BigIntStats, path: string, type: number, ino: number): HostAttrs {
    const key = hostKey(st)
    const kept = this.attrCache?.get<HostAttrs>(`a${ino}`)
    if (kept && kept.key === key && kept.ctimeNs === st.ctimeNs) return kept
    // one read of the xattrs gives the file's own and the overlay's markers
    const all = readHostXattrs(path, type, true) ?? {}
    const attrs: HostAttrs = { key, ctimeNs: st.ctimeNs }
    const xattrs = Object.entries(all).filter(([k]) => !k.startsWith(this.xattr.prefix))
    if (xattrs.length > 0) attrs.xattrs = Object.freeze(Object.fromEntries(xattrs))
    if (type === T.LNK) attrs.target = readHostLinkSync(path)
    if (isDirType(type)) {
      if (parseOpaqueXattr(all[this.xattr.opaque]).opaque) attrs.opaque = true
      const redirect = all[this.xattr.redirect]
      if (redirect !== undefined) attrs.redirect = redirect.toString()
    }
    // xattrs the kernel changes by itself (file capabilities go on write and chown, ACLs follow
    // chmod) are read each time
    if (this.attrCache && !xattrs.some(([k]) => k.startsWith('security.capability') || k.startsWith('system.'))) {
      const bytes = 160 + 2 * key.length + 2 * (attrs.target?.length ?? 0) + 2 * (attrs.redirect?.length ?? 0) + xattrs.reduce((n, [k, v]) => n + 2 * k.length + v.length + 64, 0)
      this.attrCache.set(`a${ino}`, attrs, bytes)
    }
    return attrs
  }
}

/**
 * join(dir, name) for a dir path that join() left as it is and a name of one component, without
 * normalizing the whole path again (a path walk builds one path per component and layer).
 */
export function childPath(dir: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || (dir.endsWith('/') && dir !== '/')) return join(dir, name)
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

/** Binary search in a listing sorted as Array.prototype.sort sorts names (by UTF-16 code units). */
function findEntry(list: ReadonlyArray<[string, EntryRecord]>, name: string): EntryRecord | undefined {
  let lo = 0, hi = list.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const k = list[mid][0]
    if (k === name) return list[mid][1]
    if (k < name) lo = mid + 1
    else hi = mid - 1
  }
  return undefined
}

