import { chmod, lchown, link, lutimes, mkdir, open, readdir, rm, stat, symlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Store } from '../store.js'
import type { SnapshotFs, Stats } from '../snapshotfs.js'
import { T, joinPath, typeOf } from '../overlay/node.js'
import { fsError, isCode } from '../errors.js'
import { checkProgress } from '../validate.js'
import { IO_BYTES, forEachLimit, hostError, readFull, writeNonZeroRuns } from '../host/io.js'
import { hostMayWriteXattr, writeHostXattr } from '../host/xattrs.js'
import { makeNode, makeSocket, utimeSeconds } from '../host/nodes.js'
import type { CheckoutOptions, ProgressFn } from '../types.js'

/**
 * Writes the merged tree of a snapshot out to a host directory: every file type, modes with
 * their special bits, owners, hard links, xattrs, holes, and times (to the microsecond: Node's
 * utimes goes through libuv, which drops sub-microsecond digits).
 *
 * Devices, fifos and sockets are made as host/nodes.ts explains. Ownership is set only when
 * running as root, as tar does; then every xattr namespace is written, else only user.* and ACLs. Symlinks get no xattrs (the binding follows symlinks).
 * The target dir itself takes the attributes of the snapshot's root. A failure part way leaves
 * what was written so far, as tar does; the error names what failed.
 */

interface SnapEntry {
  name: string
  /** Path in the snapshot. */
  path: string
  st: Stats
  children?: SnapEntry[]
}

export async function checkout(store: Store, key: string, dir: string, opts: CheckoutOptions = {}): Promise<void> {
  await store.stat(key)
  if (typeof dir !== 'string' || dir === '') throw fsError('EINVAL', 'checkout', String(dir), 'directory must be a non-empty path')
  checkProgress(opts.progress, 'checkout', dir)
  const target = resolve(dir)
  const existing = await stat(target).catch((err: unknown) => {
    if (isCode(err, 'ENOENT')) return undefined
    throw hostError(err, 'checkout', target)
  })
  if (existing && !existing.isDirectory()) throw fsError('ENOTDIR', 'checkout', target)
  const inside = existing ? await readdir(target).catch((err: unknown) => { throw hostError(err, 'checkout', target) }) : []
  if (inside.length > 0) throw fsError('ENOTEMPTY', 'checkout', target, 'checkout needs a new or empty directory')

  const sfs = store.fs(key)
  const scan = new SnapshotScan(sfs)
  const root = await scan.tree()
  try {
    if (!existing) await mkdir(target, { recursive: true, mode: 0o700 })
    const writer = new TreeWriter(sfs, scan.bytes, opts.progress)
    await writer.writeDirContents(root, target)
    opts.progress?.(writer.done, scan.bytes, target)
  } catch (err) {
    throw hostError(err, 'checkout', target)
  }
}

/** The snapshot's tree, read once up front for the total to report progress against. */
class SnapshotScan {
  bytes = 0
  private readonly counted = new Set<number>()
  constructor(private readonly sfs: SnapshotFs) {}

  async tree(): Promise<SnapEntry> {
    const root: SnapEntry = { name: '', path: '/', st: await this.sfs.lstat('/') }
    await this.fill(root)
    return root
  }

  private async fill(dir: SnapEntry): Promise<void> {
    const names = (await this.sfs.readdir(dir.path)).sort()
    dir.children = []
    // a few lookups in flight at once overlap their store reads
    for (let i = 0; i < names.length; i += 32) {
      const batch = names.slice(i, i + 32).map((name) => ({ name, path: joinPath(dir.path, name) }))
      const stats = await Promise.all(batch.map((b) => this.sfs.lstat(b.path)))
      batch.forEach((b, j) => dir.children!.push({ ...b, st: stats[j] }))
    }
    for (const e of dir.children) {
      if (e.st.isDirectory()) await this.fill(e)
      else if (e.st.isFile() && !this.counted.has(e.st.ino)) {
        this.bytes += e.st.size
        if (e.st.nlink > 1) this.counted.add(e.st.ino)
      }
    }
  }
}

/** Files written at once within one dir. */
const CHECKOUT_CONCURRENCY = 8

class TreeWriter {
  done = 0
  private readonly asRoot = process.getuid?.() === 0
  /** First host path of each snapshot inode with several names. */
  private readonly linked = new Map<number, string>()
  private readonly buffers: Buffer[] = []

  constructor(private readonly sfs: SnapshotFs, private readonly total: number, private readonly progress: ProgressFn | undefined) {}

  /** Fills the (existing, empty) host dir, then gives it the snapshot dir's attributes. */
  async writeDirContents(e: SnapEntry, host: string): Promise<void> {
    const one = (c: SnapEntry): Promise<void> => this.writeEntry(c, join(host, c.name))
    // files with one name do not depend on each other: several at once hide each one's latency
    const independent = (c: SnapEntry): boolean => !c.st.isDirectory() && c.st.nlink === 1
    await forEachLimit(e.children!.filter(independent), CHECKOUT_CONCURRENCY, one)
    for (const child of e.children!) if (!independent(child)) await one(child)
    await this.applyAttrs(e, host)
  }

  private async writeEntry(e: SnapEntry, host: string): Promise<void> {
    const type = typeOf(e.st.mode)
    if (type === T.DIR) {
      // owner-only until the children are in; the real mode comes last
      await mkdir(host, 0o700)
      return this.writeDirContents(e, host)
    }
    if (e.st.nlink > 1) {
      const first = this.linked.get(e.st.ino)
      if (first !== undefined) return link(first, host)
      this.linked.set(e.st.ino, host)
    }
    switch (type) {
      case T.REG: await this.copyData(e, host); break
      case T.LNK: await symlink(await this.sfs.readlink(e.path), host); break
      case T.CHR: case T.BLK: case T.FIFO: await makeNode(host, type, e.st.rdev); break
      case T.SOCK: await makeSocket(host); break
      default: throw fsError('ENOTSUP', 'checkout', e.path, `file type ${type.toString(8)} cannot be written out`)
    }
    await this.applyAttrs(e, host)
  }

  private async copyData(e: SnapEntry, host: string): Promise<void> {
    const buf = this.buffers.pop() ?? Buffer.allocUnsafe(IO_BYTES)
    const src = await this.sfs.open(e.path, 'r')
    try {
      await writeHostFile(src, e.st.size, host, buf)
    } finally {
      await src.close()
      this.buffers.push(buf)
    }
    this.done += e.st.size
    this.progress?.(this.done, this.total, e.path)
  }

  private async applyAttrs(e: SnapEntry, host: string): Promise<void> {
    const xattrs: Array<[string, Buffer]> = []
    if (!e.st.isSymbolicLink()) {
      for (const name of await this.sfs.listxattr(e.path, { follow: false })) {
        if (hostMayWriteXattr(name, this.asRoot)) xattrs.push([name, await this.sfs.getxattr(e.path, name, { follow: false })])
      }
    }
    await applyHostAttrs(host, e.st, xattrs, this.asRoot)
  }
}

/**
 * Writes a new host file of `size` bytes from `src` in large pieces (`buf`, IO_BYTES long);
 * all-zero chunks (holes in the store) are not written, so they stay holes. When a read fails
 * (damaged data) the file is removed: a file cut short must not pass for the snapshot's content.
 */
export async function writeHostFile(src: { read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }> }, size: number, host: string, buf: Buffer): Promise<void> {
  const dst = await open(host, 'wx', 0o600)
  let written = false
  try {
    for (let pos = 0; pos < size; pos += IO_BYTES) {
      const n = await readFull(src, buf, pos)
      if (n === 0) break
      await writeNonZeroRuns(buf, n, pos, (off, len, at) => dst.write(buf, off, len, at))
    }
    await dst.truncate(size)
    written = true
  } finally {
    await dst.close()
    if (!written) await rm(host, { force: true })
  }
}

/** What applyHostAttrs sets. */
export interface HostAttrs {
  mode: number
  uid: number
  gid: number
  atimeNs: bigint
  mtimeNs: bigint
}

/**
 * Owner (as root only), xattrs (the caller leaves out those it may not write), mode, then times:
 * chown clears setuid, and every change but utimes moves mtime. Symlinks get owner and times only.
 */
export async function applyHostAttrs(host: string, a: HostAttrs, xattrs: Array<[string, Buffer]>, asRoot: boolean): Promise<void> {
  if (asRoot) await lchown(host, a.uid, a.gid)
  if (typeOf(a.mode) !== T.LNK) {
    for (const [name, value] of xattrs) await writeHostXattr(host, name, value)
    await chmod(host, a.mode & 0o7777)
  }
  await lutimes(host, utimeSeconds(a.atimeNs), utimeSeconds(a.mtimeNs))
}
