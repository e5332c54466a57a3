import * as fsp from 'node:fs/promises'
import { getAttribute, listAttributes, removeAttribute, setAttribute } from 'fs-xattr'
import type { Creds, SnapshotFs } from '../../engine/index.js'
import { renameat2 } from './renameat2.js'

/**
 * The file system under test, as the differential harness sees it: a few path calls shaped after
 * node:fs/promises, errors carrying an errno `code`. One adapter runs them on a kernel overlayfs
 * mount, another on a Strata SnapshotFs (strata-fsut.ts). Paths are absolute within the tree.
 */

export type EntryType = 'file' | 'dir' | 'symlink' | 'other'

export interface StatLike {
  mode: number
  uid: number
  gid: number
  size: number
  ino: number | bigint
}

export interface OpenFile {
  /** pwrite(2): with O_APPEND the kernel (and Strata) ignore `position` and append. */
  write(data: Buffer, position: number): Promise<void>
  read(into: Buffer, position: number): Promise<number>
  stat(): Promise<StatLike>
  close(): Promise<void>
}

export interface FsUnderTest {
  readonly name: string
  /** What test/treecompare.ts reads the whole tree from: a host path or a SnapshotFs. */
  readonly treeSource: string | SnapshotFs
  lstat(path: string): Promise<StatLike>
  stat(path: string): Promise<StatLike>
  readdir(path: string): Promise<Array<{ name: string; type: EntryType }>>
  readFile(path: string): Promise<Buffer>
  readlink(path: string): Promise<string>
  open(path: string, flags: number, mode: number): Promise<OpenFile>
  truncate(path: string, len: number): Promise<void>
  unlink(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  mkdir(path: string, mode: number): Promise<void>
  /** flags: RENAME_NOREPLACE, RENAME_EXCHANGE (renameat2.ts). */
  rename(from: string, to: string, flags: number): Promise<void>
  link(existing: string, newPath: string): Promise<void>
  symlink(target: string, path: string): Promise<void>
  chmod(path: string, mode: number): Promise<void>
  chown(path: string, uid: number, gid: number, follow: boolean): Promise<void>
  /** Seconds since the epoch. */
  utimes(path: string, atime: number, mtime: number, follow: boolean): Promise<void>
  /** The xattr calls follow symlinks, as setxattr(2) and friends. */
  setxattr(path: string, name: string, value: Buffer): Promise<void>
  removexattr(path: string, name: string): Promise<void>
  getxattr(path: string, name: string): Promise<Buffer>
  listxattr(path: string): Promise<string[]>
  /** Runs `fn` with its calls made with `creds` instead of root's. */
  as<T>(creds: Creds, fn: (fs: FsUnderTest) => Promise<T>): Promise<T>
  /** Ends the side: closes handles, unmounts or closes the store. */
  close(): Promise<void>
}

export const typeOfMode = (mode: number): EntryType => {
  switch (mode & 0o170000) {
    case 0o100000: return 'file'
    case 0o040000: return 'dir'
    case 0o120000: return 'symlink'
    default: return 'other'
  }
}

const direntType = (d: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType =>
  d.isFile() ? 'file' : d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : 'other'

/**
 * node:fs/promises (and fs-xattr) on the directory `root`, typically a kernel overlay mount.
 * Calls as another user switch this process's effective ids for their duration: the harness
 * makes one call at a time.
 */
export class HostFs implements FsUnderTest {
  constructor(readonly name: string, readonly root: string, private readonly onClose: () => Promise<void> = async () => {}, private readonly creds?: Creds) {}
  get treeSource(): string { return this.root }

  /** '/a/b' -> ROOT/a/b, keeping a trailing slash, which changes what some calls do. */
  private p(path: string): string {
    return this.root + path
  }

  async lstat(path: string): Promise<StatLike> { return fsp.lstat(this.p(path)) }
  async stat(path: string): Promise<StatLike> { return fsp.stat(this.p(path)) }
  async readdir(path: string): Promise<Array<{ name: string; type: EntryType }>> {
    return (await fsp.readdir(this.p(path), { withFileTypes: true })).map((d) => ({ name: d.name, type: direntType(d) }))
  }
  readFile(path: string): Promise<Buffer> { return fsp.readFile(this.p(path)) }
  readlink(path: string): Promise<string> { return fsp.readlink(this.p(path)) }

  async open(path: string, flags: number, mode: number): Promise<OpenFile> {
    const h = await fsp.open(this.p(path), flags, mode)
    return {
      write: async (data, position) => { await h.write(data, 0, data.length, position) },
      read: async (into, position) => (await h.read(into, 0, into.length, position)).bytesRead,
      stat: () => h.stat(),
      close: () => h.close(),
    }
  }

  truncate(path: string, len: number): Promise<void> { return fsp.truncate(this.p(path), len) }
  unlink(path: string): Promise<void> { return fsp.unlink(this.p(path)) }
  rmdir(path: string): Promise<void> { return fsp.rmdir(this.p(path)) }
  async mkdir(path: string, mode: number): Promise<void> { await fsp.mkdir(this.p(path), { mode }) }
  rename(from: string, to: string, flags: number): Promise<void> {
    return flags === 0 ? fsp.rename(this.p(from), this.p(to)) : renameat2(this.p(from), this.p(to), flags, this.creds)
  }
  link(existing: string, newPath: string): Promise<void> { return fsp.link(this.p(existing), this.p(newPath)) }
  // the target is stored as given: it is not a path of this tree's host
  symlink(target: string, path: string): Promise<void> { return fsp.symlink(target, this.p(path)) }
  chmod(path: string, mode: number): Promise<void> { return fsp.chmod(this.p(path), mode) }
  chown(path: string, uid: number, gid: number, follow: boolean): Promise<void> {
    return follow ? fsp.chown(this.p(path), uid, gid) : fsp.lchown(this.p(path), uid, gid)
  }
  utimes(path: string, atime: number, mtime: number, follow: boolean): Promise<void> {
    return follow ? fsp.utimes(this.p(path), atime, mtime) : fsp.lutimes(this.p(path), atime, mtime)
  }
  setxattr(path: string, name: string, value: Buffer): Promise<void> { return setAttribute(this.p(path), name, value) }
  removexattr(path: string, name: string): Promise<void> { return removeAttribute(this.p(path), name) }
  getxattr(path: string, name: string): Promise<Buffer> { return getAttribute(this.p(path), name) }
  listxattr(path: string): Promise<string[]> { return listAttributes(this.p(path)) }
  close(): Promise<void> { return this.onClose() }

  async as<T>(creds: Creds, fn: (fs: FsUnderTest) => Promise<T>): Promise<T> {
    if (creds.uid === 0 && creds.gid === 0) return fn(this)
    const groups = process.getgroups!()
    process.setgroups!(creds.groups ?? [])
    process.setegid!(creds.gid)
    process.seteuid!(creds.uid)
    try {
      return await fn(new HostFs(this.name, this.root, this.onClose, creds))
    } finally {
      process.seteuid!(0)
      process.setegid!(0)
      process.setgroups!(groups)
    }
  }
}
