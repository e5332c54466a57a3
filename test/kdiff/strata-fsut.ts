import { ROOT, type Creds, type SnapshotFs } from '../../engine/index.js'
import { type EntryType, type FsUnderTest, type OpenFile, type StatLike } from './fsut.js'

/** A Strata snapshot (or dir stack) as a side of the differential test; `fsFor` gives its SnapshotFs for a caller. */
export class StrataFs implements FsUnderTest {
  private readonly fs: SnapshotFs
  constructor(readonly name: string, private readonly fsFor: (creds: Creds) => SnapshotFs, private readonly onClose: () => Promise<void>, creds: Creds = ROOT) {
    this.fs = fsFor(creds)
  }
  get treeSource(): SnapshotFs { return this.fs }

  lstat(path: string): Promise<StatLike> { return this.fs.lstat(path) }
  stat(path: string): Promise<StatLike> { return this.fs.stat(path) }
  async readdir(path: string): Promise<Array<{ name: string; type: EntryType }>> {
    return (await this.fs.readdir(path, { withFileTypes: true })).map((d) => ({
      name: d.name,
      type: d.isFile() ? 'file' : d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : 'other',
    }))
  }
  readFile(path: string): Promise<Buffer> { return this.fs.readFile(path) }
  readlink(path: string): Promise<string> { return this.fs.readlink(path) }

  async open(path: string, flags: number, mode: number): Promise<OpenFile> {
    const h = await this.fs.open(path, flags, mode)
    return {
      write: async (data, position) => { await h.write(data, 0, data.length, position) },
      read: async (into, position) => (await h.read(into, 0, into.length, position)).bytesRead,
      stat: () => h.stat(),
      close: () => h.close(),
    }
  }

  truncate(path: string, len: number): Promise<void> { return this.fs.truncate(path, len) }
  unlink(path: string): Promise<void> { return this.fs.unlink(path) }
  rmdir(path: string): Promise<void> { return this.fs.rmdir(path) }
  async mkdir(path: string, mode: number): Promise<void> { await this.fs.mkdir(path, { mode }) }
  rename(from: string, to: string, flags: number): Promise<void> { return this.fs.rename(from, to, flags) }
  link(existing: string, newPath: string): Promise<void> { return this.fs.link(existing, newPath) }
  symlink(target: string, path: string): Promise<void> { return this.fs.symlink(target, path) }
  chmod(path: string, mode: number): Promise<void> { return this.fs.chmod(path, mode) }
  chown(path: string, uid: number, gid: number, follow: boolean): Promise<void> {
    return follow ? this.fs.chown(path, uid, gid) : this.fs.lchown(path, uid, gid)
  }
  utimes(path: string, atime: number, mtime: number, follow: boolean): Promise<void> {
    return follow ? this.fs.utimes(path, atime, mtime) : this.fs.lutimes(path, atime, mtime)
  }
  setxattr(path: string, name: string, value: Buffer): Promise<void> { return this.fs.setxattr(path, name, value) }
  removexattr(path: string, name: string): Promise<void> { return this.fs.removexattr(path, name) }
  getxattr(path: string, name: string): Promise<Buffer> { return this.fs.getxattr(path, name) }
  listxattr(path: string): Promise<string[]> { return this.fs.listxattr(path) }
  close(): Promise<void> { return this.onClose() }
  as<T>(creds: Creds, fn: (fs: FsUnderTest) => Promise<T>): Promise<T> {
    return fn(new StrataFs(this.name, this.fsFor, this.onClose, creds))
  }
}
