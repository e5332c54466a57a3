import { lstat, readdir } from 'node:fs/promises'
import type { BigIntStats } from 'node:fs'
import { join } from 'node:path'
import { getAttributeSync } from 'fs-xattr'
import type { EntryRecord, InodeRecord } from '../store/records.js'
import { ROOT_INO, WHITEOUT } from '../store/records.js'
import { T, isDirType, typeOf, type UpperLayer } from '../overlay/node.js'
import { isWhiteoutDevice, isXattrWhiteout, overlayXattrNames, parseOpaqueXattr, type OverlayXattrNames } from '../overlay/whiteout.js'
import { fromNs } from '../overlay/stats.js'
import { readHostXattrs } from '../host/xattrs.js'
import { hostKey, readHostLink } from '../host/scan.js'
import { hostError } from '../host/io.js'
import { isCode } from '../errors.js'

export interface DirLayerOptions {
  /** Overlay xattrs under `user.overlay.` instead of `trusted.overlay.`, as the kernel's option. */
  userxattr?: boolean
  /** Numbers for the objects met (see inos.ts). */
  allocIno: () => number
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
 * overlay rules address it exactly as they address a store layer.
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

  constructor(readonly root: string, protected readonly opts: DirLayerOptions) {
    this.id = root
    this.xattr = overlayXattrNames(opts.userxattr)
  }

  /** The host path of an object met before, or undefined. */
  pathOf(ino: number): string | undefined {
    const set = this.aside.get(ino)
    if (set !== undefined) return set
    if (ino === ROOT_INO) return this.root
    const refs = this.names.get(ino)
    const ref = refs?.[refs.length - 1]
    if (!ref) return undefined
    const dir = this.pathOf(ref.dir)
    return dir === undefined ? undefined : join(dir, ref.name)
  }

  /** The layer's number for a host object, remembering `dir/name` as where it is. */
  protected bind(st: BigIntStats, dir: number, name: string): number {
    const key = hostKey(st)
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

  protected async lstatOrUndefined(path: string): Promise<BigIntStats | undefined> {
    try {
      return await lstat(path, { bigint: true })
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return undefined
      throw hostError(err, 'lstat', path)
    }
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
    return [this.bind(st, dir, name), typeOf(mode)]
  }

  async entry(dirIno: number, name: string): Promise<EntryRecord | undefined> {
    const dirPath = this.pathOf(dirIno)
    if (dirPath === undefined) return undefined
    const path = join(dirPath, name)
    const st = await this.lstatOrUndefined(path)
    if (!st) return undefined
    return this.classify(st, path, dirIno, name)
  }

  async entries(dirIno: number): Promise<Array<[string, EntryRecord]>> {
    const dirPath = this.pathOf(dirIno)
    if (dirPath === undefined) return []
    let names: string[]
    try {
      names = await readdir(dirPath)
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return []
      throw hostError(err, 'readdir', dirPath)
    }
    const out: Array<[string, EntryRecord]> = []
    for (const name of names.sort()) {
      const path = join(dirPath, name)
      const st = await this.lstatOrUndefined(path)
      if (st) out.push([name, this.classify(st, path, dirIno, name)])
    }
    return out
  }

  async inode(ino: number): Promise<InodeRecord | undefined> {
    const path = this.pathOf(ino)
    if (path === undefined) return undefined
    const st = await this.lstatOrUndefined(path)
    if (!st) return undefined
    return this.record(st, path)
  }

  /** The inode record of a host object, as a store layer would hold it. */
  protected async record(st: BigIntStats, path: string): Promise<InodeRecord> {
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
    const all = readHostXattrs(path, type, true) ?? {}
    const xattrs = Object.entries(all).filter(([k]) => !k.startsWith(this.xattr.prefix))
    if (xattrs.length > 0) rec.xattrs = Object.fromEntries(xattrs)
    if (type === T.LNK) rec.target = await readHostLink(path)
    if (type === T.REG) rec.hostPath = path
    if (isDirType(type)) {
      if (parseOpaqueXattr(this.getXattr(path, this.xattr.opaque)).opaque) rec.opaque = true
      const redirect = this.getXattr(path, this.xattr.redirect)
      if (redirect !== undefined) rec.redirect = redirect.toString()
    }
    return rec
  }
}
