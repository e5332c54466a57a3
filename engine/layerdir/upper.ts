import { mkdir, rm, truncate, open, type FileHandle } from 'node:fs/promises'
import { chmodSync, closeSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, renameSync, symlinkSync, unlinkSync, type BigIntStats } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { removeAttributeSync } from 'fs-xattr'
import type { InodeRecord } from '../store/records.js'
import type { ChunkStore } from '../store/chunks.js'
import { FileContent } from '../store/filedata.js'
import { T, isDirType, typeOf, type UpperTxn, type UpperWriter } from '../overlay/node.js'
import { OPAQUE_VALUE } from '../overlay/whiteout.js'
import { toNs } from '../overlay/stats.js'
import { makeNode, makeSocket, utimeSeconds } from '../host/nodes.js'
import { readHostXattrs, writeHostXattrSync } from '../host/xattrs.js'
import { hostError, writeNonZeroRuns, IO_BYTES } from '../host/io.js'
import { copyHostFileDurably } from '../host/copy.js'
import { fsError, isCode } from '../errors.js'
import { DirLayer, childPath, type DirLayerOptions } from './layer.js'
import { hostKey } from '../host/scan.js'

export interface DirUpperOptions extends DirLayerOptions {
  /** The kernel's workdir: new objects are made here and renamed into place. */
  workdir: string
  /** Where the data of store inodes copied up into this layer is read. */
  chunks?: ChunkStore
}

type Op =
  | { kind: 'entry'; dir: number; name: string; ino: number; type: number }
  | { kind: 'delEntry'; dir: number; name: string }
  | { kind: 'delInode'; ino: number }

/** One operation's changes, replayed on the host in order at commit. */
class DirTxn implements UpperTxn {
  readonly ops: Op[] = []
  readonly records = new Map<number, InodeRecord>()
  constructor(private readonly layer: DirUpper) {}
  commit(): Promise<void> {
    return this.layer.apply(this)
  }
}

/**
 * A writable directory layer, written exactly as the kernel writes its upper dir: whiteouts are
 * char devices 0/0, opaque dirs and redirects are `overlay.opaque` / `overlay.redirect` xattrs,
 * file data is copied up in full. New objects are made in the work dir and renamed into place,
 * so a name never shows a half-made object. Metadata calls block (see DirLayer.lstatOrUndefined);
 * only data copies go through the thread pool.
 */
export class DirUpper extends DirLayer implements UpperWriter {
  private readonly work: string
  private readonly tmpPrefix = randomBytes(6).toString('hex')
  private tmpCount = 0

  constructor(root: string, private readonly upperOpts: DirUpperOptions) {
    super(root, upperOpts)
    this.work = join(upperOpts.workdir, 'work')
  }

  /** Makes the work dir (as the kernel does at mount) and clears what a crash left there. */
  async prepare(): Promise<void> {
    await mkdir(this.work, { recursive: true })
    await rm(this.work, { recursive: true, force: true })
    await mkdir(this.work, { recursive: true })
  }

  txn(): DirTxn {
    return new DirTxn(this)
  }

  async sync(): Promise<void> {}

  /** Data moves when the transaction is applied: the record keeps naming where it is now. */
  async adoptRecord(_txn: UpperTxn, rec: InodeRecord): Promise<InodeRecord> {
    return rec
  }

  readonly keepsHardLinks = false

  putEntry(txn: UpperTxn, dir: number, name: string, rec: [number, number]): void {
    ;(txn as DirTxn).ops.push({ kind: 'entry', dir, name, ino: rec[0], type: rec[1] })
  }
  delEntry(txn: UpperTxn, dir: number, name: string): void {
    ;(txn as DirTxn).ops.push({ kind: 'delEntry', dir, name })
  }
  putInode(txn: UpperTxn, ino: number, rec: InodeRecord): void {
    ;(txn as DirTxn).records.set(ino, rec)
  }
  delInode(txn: UpperTxn, ino: number): void {
    ;(txn as DirTxn).ops.push({ kind: 'delInode', ino })
  }

  /** A new name in the work dir: unique within the layer's life, and the work dir is emptied at open. */
  private tmpPath(): string {
    return `${this.work}/#${this.tmpPrefix}${(this.tmpCount++).toString(36)}`
  }

  private pathIn(dir: number, name: string): string {
    const d = this.prefixOf(dir)
    if (d === undefined) throw fsError('EIO', 'write', name, `directory ${dir} of the upper layer ${this.root} is unknown`)
    return childPath(d, name)
  }

  /** Replays a transaction: names first (in order), then the records of inodes that exist. */
  async apply(txn: DirTxn): Promise<void> {
    const setAside: string[] = []
    const placed = new Set(txn.ops.filter((o): o is Extract<Op, { kind: 'entry' }> => o.kind === 'entry' && o.ino !== 0).map((o) => o.ino))
    // what was read of the objects changed here is not used again (before or after the changes)
    const changed = (): void => {
      for (const ino of placed) this.changedAttrs(ino)
      for (const ino of txn.records.keys()) this.changedAttrs(ino)
      this.forgetThisTurn()
    }
    changed()
    try {
      for (const op of txn.ops) {
        if (op.kind === 'delInode') this.forget(op.ino)
        else if (op.kind === 'delEntry') {
          await this.removeAt(this.pathIn(op.dir, op.name))
          this.dropName(op.dir, op.name)
        } else if (op.ino === 0) await this.whiteoutAt(op.dir, op.name)
        else await this.place(txn, op.dir, op.name, op.ino, op.type, placed, setAside)
      }
      for (const [ino, rec] of txn.records) {
        const path = this.pathOf(ino)
        const st = path === undefined ? undefined : this.lstatOrUndefined(path)
        if (st) await this.applyRecord(path!, rec, st)
      }
    } finally {
      changed()
      // what was set aside for an exchange has its new names by now
      this.aside.clear()
      for (const path of setAside) await rm(path, { recursive: true, force: true })
    }
  }

  /** Removes whatever is at `path`: a dir of the upper layer holds at most whiteouts by now. */
  private async removeAt(path: string, st = this.lstatOrUndefined(path)): Promise<void> {
    if (!st) return
    if (isDirType(typeOf(Number(st.mode)))) {
      await rm(path, { recursive: true, force: true }).catch((err: unknown) => { throw hostError(err, 'unlink', path) })
      return
    }
    try {
      unlinkSync(path)
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw hostError(err, 'unlink', path)
    }
  }

  private async whiteoutAt(dir: number, name: string): Promise<void> {
    const path = this.pathIn(dir, name)
    const tmp = this.tmpPath()
    await makeNode(tmp, T.CHR, 0)
    chmodSync(tmp, 0) // as the kernel makes them
    const st = this.lstatOrUndefined(path)
    if (st && isDirType(typeOf(Number(st.mode)))) await this.removeAt(path, st)
    renameSync(tmp, path)
    this.dropName(dir, name)
  }

  /** Puts inode `ino` at `dir/name`: moves a dir, links a non-dir, or makes a new object. */
  private async place(txn: DirTxn, dir: number, name: string, ino: number, type: number, placed: Set<number>, setAside: string[]): Promise<void> {
    const target = this.pathIn(dir, name)
    const occupant = this.lstatOrUndefined(target)
    if (occupant) {
      // an object that this txn puts elsewhere too (an exchange) steps aside first
      const other = this.inoAt(hostKey(occupant))
      if (other !== undefined && other !== ino && placed.has(other)) {
        const aside = this.tmpPath()
        renameSync(target, aside)
        this.aside.set(other, aside)
        setAside.push(aside)
        this.dropName(dir, name)
      }
    }
    const current = this.pathOf(ino)
    const exists = current !== undefined && this.lstatOrUndefined(current) !== undefined
    if (exists && current === target) return
    let made: string
    if (exists) {
      if (isDirType(type)) {
        await this.clearForDir(target)
        renameSync(current!, target)
        this.aside.delete(ino)
        const old = this.names.get(ino)?.at(-1)
        if (old) this.dropName(old.dir, old.name)
        this.remember(ino, dir, name)
        return
      }
      made = this.tmpPath()
      linkSync(current!, made)
    } else {
      const rec = txn.records.get(ino)
      if (!rec) throw fsError('EIO', 'write', target, `no record for new inode ${ino} in the upper layer`)
      made = this.tmpPath()
      await this.make(made, rec)
    }
    if (isDirType(type)) await this.clearForDir(target)
    renameSync(made, target)
    this.aside.delete(ino)
    const st = this.lstatOrUndefined(target)!
    this.tie(hostKey(st), ino)
    this.remember(ino, dir, name)
  }

  /** A dir cannot be renamed over a non-dir or a non-empty dir: what is there goes first. */
  private async clearForDir(target: string): Promise<void> {
    await this.removeAt(target)
  }

  /** Makes a new host object for a record, with its data, owner, mode, xattrs and times. */
  private async make(path: string, rec: InodeRecord): Promise<void> {
    const type = typeOf(rec.mode)
    if (type === T.DIR) mkdirSync(path, { mode: 0o700 })
    else if (type === T.REG) await this.writeData(path, rec)
    else if (type === T.LNK) symlinkSync(rec.target ?? '', path)
    else if (type === T.SOCK) await makeSocket(path)
    else await makeNode(path, type, rec.rdev)
    await this.applyRecord(path, rec, this.lstatOrUndefined(path)!)
  }

  /**
   * A regular file's data, in the work dir. Data is fsynced before the file is renamed into
   * place, as the kernel's copy-up does (unless volatile): otherwise a crash after the rename
   * could leave the upper name on a file with its data missing, hiding the lower one.
   */
  private async writeData(path: string, rec: InodeRecord): Promise<void> {
    // nothing to copy, whatever the host file holds (the record of a file opened with O_TRUNC)
    if (rec.size === 0) {
      closeSync(openSync(path, 'wx', 0o600))
      return
    }
    const fh = await open(path, 'wx', 0o600)
    try {
      if (rec.hostPath !== undefined) await copyHostFileDurably(rec.hostPath, path, fh, rec.size)
      else await this.writeStoreData(path, rec, fh)
    } finally {
      await fh.close()
    }
  }

  /** The data of a store inode (its chunks), written to `fh` and fsynced. */
  private async writeStoreData(path: string, rec: InodeRecord, fh: FileHandle): Promise<void> {
    if (!this.upperOpts.chunks) throw fsError('EIO', 'copy-up', path, 'file data is in a store that is not open')
    const content = await FileContent.load(rec, this.upperOpts.chunks, { path })
    const buf = Buffer.alloc(IO_BYTES)
    for (let pos = 0; pos < rec.size; pos += IO_BYTES) {
      const n = await content.read(buf, 0, Math.min(IO_BYTES, rec.size - pos), pos)
      // holes stay holes, as the kernel's copy-up keeps a sparse file sparse
      await writeNonZeroRuns(buf, n, pos, (off, len, at) => fh.write(buf, off, len, at))
    }
    await fh.truncate(rec.size)
    await fh.sync()
  }

  /**
   * Brings a host object (`st`: its lstat now) to the record's attributes (owner before mode:
   * chown clears set-id bits). What already is as the record says is left as it is.
   */
  private async applyRecord(path: string, rec: InodeRecord, st: BigIntStats): Promise<void> {
    const type = typeOf(rec.mode)
    const chown = Number(st.uid) !== rec.uid || Number(st.gid) !== rec.gid
    if (chown) lchownSync(path, rec.uid, rec.gid)
    if (type !== T.LNK && (chown || Number(st.mode & 0o7777n) !== (rec.mode & 0o7777))) chmodSync(path, rec.mode & 0o7777)
    const truncated = type === T.REG && Number(st.size) !== rec.size && rec.hostPath === path
    if (truncated) await truncate(path, rec.size)
    if (type !== T.LNK) this.applyXattrs(path, type, rec)
    const [atime, mtime] = [toNs(rec.atime), toNs(rec.mtime)]
    if (truncated || !settledTime(st.atimeNs, atime) || !settledTime(st.mtimeNs, mtime)) lutimesSync(path, utimeSeconds(atime), utimeSeconds(mtime))
  }

  private applyXattrs(path: string, type: number, rec: InodeRecord): void {
    const want: Record<string, Buffer> = { ...(rec.xattrs ?? {}) }
    if (isDirType(type)) {
      if (rec.opaque) want[this.xattr.opaque] = OPAQUE_VALUE
      if (rec.redirect !== undefined) want[this.xattr.redirect] = Buffer.from(rec.redirect)
    }
    const have = readHostXattrs(path, type, true) ?? {}
    for (const name of Object.keys(have)) {
      const ours = name.startsWith(this.xattr.prefix)
      // the overlay's own xattrs other than opaque and redirect (origin, impure...) are left alone
      if (ours && name !== this.xattr.opaque && name !== this.xattr.redirect) continue
      if (!(name in want)) {
        try {
          removeAttributeSync(path, name)
        } catch (err) {
          if (!isCode(err, 'ENODATA')) throw hostError(err, 'removexattr', path)
        }
      }
    }
    for (const [name, value] of Object.entries(want)) {
      if (!have[name] || !Buffer.from(have[name]).equals(Buffer.from(value))) writeHostXattrSync(path, name, Buffer.from(value))
    }
  }
}

/** Latest time (ns) that utimeSeconds lands on exactly; later ones are set, never compared. */
const EXACT_TIME_NS = 2n ** 32n * 1_000_000_000n

/** A host time (ns) is already what lutimes would set for `ns`: the same whole microsecond. */
const settledTime = (host: bigint, ns: bigint): boolean => ns >= 0n && ns < EXACT_TIME_NS && host === ns - (ns % 1000n)

