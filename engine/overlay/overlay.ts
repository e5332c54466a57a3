import { DbReadError, type Db } from '../store/db.js'
import { ofSnapshot, type ChunkStore } from '../store/chunks.js'
import type { InodeRecord } from '../store/records.js'
import type { Creds } from '../types.js'
import { fsError, type ErrnoCode } from '../errors.js'
import { T, isDirType, joinPath, type LowerTree, type OvlNode, type UpperTxn, type UpperWriter } from './node.js'
import type { FileData } from './data.js'
import { Stats } from './stats.js'
import { FileContent } from '../store/filedata.js'
import { HostFileData } from '../host/filedata.js'
import { lookupChild, nodeInode, rootNode, type NameiContext } from './namei.js'
import { MAY_EXEC, checkAccess } from './permission.js'
import type { RedirectConfig } from './redirect.js'
import type { Mutex } from './lock.js'
import type { LiveInode } from './live.js'
import { DentryCache, type NameChanges } from './dcache.js'

export const NAME_MAX = 255
export const PATH_MAX = 4096
export const SYMLOOP_MAX = 40
/** What the kernel answers when the name to create, remove or rename is the root itself (EEXIST otherwise). */
const ROOT_AS_LAST: Partial<Record<string, ErrnoCode>> = { rmdir: 'EBUSY', rename: 'EBUSY', unlink: 'EISDIR', open: 'EISDIR' }

/** What an overlay needs from the store it lives in (a stack of directory layers has no store). */
export interface OverlayEnv {
  db?: Db
  chunks?: ChunkStore
  lock: Mutex
  allocIno: () => Promise<number>
  /** Called with the xattrs of an inode being copied up; returns those to keep (the copy-up xattr hook). */
  copyUpXattr?: (name: string) => boolean
  /** The snapshot the overlay shows (the base of a directory stack), named in errors about damaged data. */
  snapshot?: string
}

/**
 * One merged view: an upper layer (absent for read-only views) over a lower tree. Holds the
 * inodes open in it, so that every handle on an inode sees the same data across copy-up.
 */
export class Overlay {
  readonly ctx: NameiContext

  constructor(
    readonly env: OverlayEnv,
    readonly upper: (UpperWriter & { id: string }) | null,
    lower: LowerTree,
    redirect: RedirectConfig,
    /** Why writes fail with EROFS, for the message. */
    readonly readOnlyReason: string,
    /** Open inodes, shared by every overlay of the same snapshot. */
    readonly live: Map<number, LiveInode>,
    /** How the snapshot's names change, where only overlays write its layers: walks keep the dirs they find. */
    names?: NameChanges,
  ) {
    this.ctx = { upper, lower, redirect }
    this.dcache = names ? new DentryCache(names) : undefined
  }

  private readonly dcache?: DentryCache

  /**
   * A change that can make a walk's cached dir node wrong: a dir removed, renamed or copied up.
   * Called once the change is committed, so that a walk that read the old state keeps nothing.
   */
  namesChanged(): void {
    this.dcache?.changed()
  }

  /** Something will write the layers without going through the overlay: walks keep nothing from now on. */
  bypassDentryCache(): void {
    this.dcache?.bypass()
  }

  /** Set when the snapshot was committed or removed: holders must open it again. */
  retired = false

  get readOnly(): boolean {
    return this.upper === null
  }

  /** A transaction on the upper layer, for one operation's changes. */
  txn(): UpperTxn {
    return this.upper!.txn()
  }

  /** The data of a regular file, from the host file or the chunks its record names. */
  async openData(rec: InodeRecord, path: string, writable: boolean): Promise<FileData> {
    if (rec.hostPath !== undefined) return HostFileData.open(rec.hostPath, writable, path)
    if (!this.env.chunks) throw fsError('EIO', 'open', path, 'file data is in a store that is not open')
    return FileContent.load(rec, this.env.chunks, { path, snapshot: this.env.snapshot })
  }

  writable(syscall: string, path: string): UpperWriter {
    if (!this.upper) throw fsError('EROFS', syscall, path, `read-only file system (${this.readOnlyReason})`)
    return this.upper
  }

  root(): OvlNode {
    return rootNode(this.ctx)
  }

  /** The inode the node shows, with unflushed changes of open files. */
  async inodeOf(node: OvlNode): Promise<InodeRecord> {
    const live = this.live.get(node.ino)
    if (live && !isDirType(node.type)) return live.current()
    try {
      return await nodeInode(this.ctx, node)
    } catch (err) {
      throw this.damagedAt(err, 'stat', node.path)
    }
  }

  /** A store read that failed (a damaged table) gets the path and snapshot it was for. */
  private damagedAt(err: unknown, syscall: string, path: string): unknown {
    if (!(err instanceof DbReadError)) return err
    return fsError('EIO', syscall, path, `the store's database cannot be read at key ${err.key}${ofSnapshot(this.env.snapshot)}: ${err.why}`)
  }

  /** What stat(2) shows for a node: a merged dir reports one link, as the kernel's overlay does. */
  async statsOf(node: OvlNode, dev: number): Promise<Stats> {
    const rec = await this.inodeOf(node)
    const nlink = isDirType(node.type) && node.upper && node.lower && !node.opaque ? 1 : rec.nlink
    return new Stats(dev, node.ino, rec, nlink)
  }

  async lookup(parent: OvlNode, name: string): Promise<OvlNode | undefined> {
    return (await lookupChild(this.ctx, parent, name)).node
  }

  /**
   * Resolves a path as the kernel's path walk does: search permission on every directory passed,
   * symlinks followed in the middle (and at the end when `follow`), '..' never above the root.
   */
  async resolve(path: string, creds: Creds, syscall: string, follow = true): Promise<OvlNode> {
    const parts = splitPath(path, syscall)
    // 'name/' names a dir: a final symlink is followed (lstat too) and anything else is ENOTDIR
    const slash = hasTrailingSlash(path)
    const node = await this.walk(parts, creds, syscall, follow || slash, path).catch((err: unknown) => { throw this.damagedAt(err, syscall, path) })
    if (slash && !isDirType(node.type)) throw fsError('ENOTDIR', syscall, path)
    return node
  }

  /** The directory that holds the last component of `path`, and that name. */
  /** `slash`: the name had a trailing slash, which each caller answers as its syscall does. */
  async resolveParent(path: string, creds: Creds, syscall: string): Promise<{ dir: OvlNode; name: string; slash: boolean }> {
    const parts = splitPath(path, syscall)
    const name = parts.pop()
    if (name === undefined) throw fsError(ROOT_AS_LAST[syscall] ?? 'EEXIST', syscall, path)
    if (name === '.' || name === '..') throw fsError(syscall === 'rmdir' ? 'ENOTEMPTY' : 'EINVAL', syscall, path)
    const dir = await this.walk(parts, creds, syscall, true, path).catch((err: unknown) => { throw this.damagedAt(err, syscall, path) })
    if (!isDirType(dir.type)) throw fsError('ENOTDIR', syscall, path)
    await this.checkDirSearch(dir, creds, syscall, path)
    return { dir, name, slash: hasTrailingSlash(path) }
  }

  /**
   * What a lookup of each of `names` in directory `path` finds (undefined: nothing), with one
   * walk to the directory and one search check, where a walk per name repeats both.
   */
  async resolveChildren(path: string, names: readonly string[], creds: Creds, syscall: string): Promise<Array<OvlNode | undefined>> {
    // each name is looked up as a walk's last step: through the dir nodes walks keep
    const generation = this.dcache?.generation ?? 0
    const dir = await this.resolve(path, creds, syscall)
    if (!isDirType(dir.type)) throw fsError('ENOTDIR', syscall, path)
    await this.checkDirSearch(dir, creds, syscall, path)
    const out: Array<OvlNode | undefined> = []
    for (const name of names) out.push(await this.walkStep(dir, name, generation).catch((err: unknown) => { throw this.damagedAt(err, syscall, path) }))
    return out
  }

  private async checkDirSearch(dir: OvlNode, creds: Creds, syscall: string, path: string): Promise<void> {
    if (creds.uid !== 0 && !creds.pathWalked) checkAccess(creds, await this.inodeOf(dir), MAY_EXEC, syscall, path)
  }

  /** `lookup` through the cache of dir nodes, for a walk that began at `generation`. */
  private async walkStep(parent: OvlNode, name: string, generation: number): Promise<OvlNode | undefined> {
    const cache = this.dcache
    if (!cache) return this.lookup(parent, name)
    const kept = cache.get(joinPath(parent.path, name))
    if (kept) return kept
    const found = await this.lookup(parent, name)
    return found && cache.add(found, generation)
  }

  private async walk(parts: string[], creds: Creds, syscall: string, followLast: boolean, path: string): Promise<OvlNode> {
    const generation = this.dcache?.generation ?? 0
    let cur = this.root()
    let links = 0
    const queue = [...parts]
    while (queue.length > 0) {
      const name = queue.shift()!
      if (!isDirType(cur.type)) throw fsError('ENOTDIR', syscall, path)
      await this.checkDirSearch(cur, creds, syscall, path)
      if (name === '.') continue
      if (name === '..') { cur = cur.parent ?? cur; continue }
      const child = await this.walkStep(cur, name, generation)
      if (!child) throw fsError('ENOENT', syscall, path)
      if (child.type === T.LNK && (queue.length > 0 || followLast)) {
        if (++links > SYMLOOP_MAX) throw fsError('ELOOP', syscall, path)
        const target = (await this.inodeOf(child)).target ?? ''
        if (target === '') throw fsError('ENOENT', syscall, path)
        if (target.startsWith('/')) cur = this.root()
        queue.unshift(...target.split('/').filter((c) => c !== ''))
        continue
      }
      cur = child
    }
    return cur
  }
}

/** A name given with a slash after it ('d/'); the root alone ('/') has no name. */
export const hasTrailingSlash = (path: string): boolean => /[^/]\/+$/.test(path)

/** Splits a path into names; refuses empty paths, NULs and over-long names. */
export function splitPath(path: string, syscall: string): string[] {
  if (typeof path !== 'string') throw fsError('EINVAL', syscall, String(path), 'path must be a string')
  if (path === '') throw fsError('ENOENT', syscall, path)
  if (path.includes('\0')) throw fsError('EINVAL', syscall, path, 'path contains a NUL byte')
  if (utf8Over(path, PATH_MAX - 1)) throw fsError('ENAMETOOLONG', syscall, path)
  const parts = path.split('/').filter((c) => c !== '')
  for (const p of parts) if (utf8Over(p, NAME_MAX)) throw fsError('ENAMETOOLONG', syscall, path)
  return parts
}

/**
 * Whether `s` takes more than `max` bytes in UTF-8. A UTF-16 unit is at most 3 bytes, so short
 * strings (every one on a path walk) are answered without counting.
 */
const utf8Over = (s: string, max: number): boolean => s.length * 3 > max && Buffer.byteLength(s) > max
