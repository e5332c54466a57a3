import type { FileHandle } from '../engine/index.js'
import { fail } from './replies.js'

/**
 * The files the kernel holds open, by the fh handed out at OPEN and CREATE, with the nodeid each
 * was opened through: an unlinked file is reached by its handles alone.
 */
export class OpenFiles {
  private readonly files = new Map<number, FileHandle>()
  private readonly fileNode = new Map<number, number>()
  /** The fhs open on each nodeid: GETXATTR and SETATTR look for one on every request. */
  private readonly nodeFiles = new Map<number, Set<number>>()
  private nextFh = 1

  /** A new fh for `file`; directories draw theirs from the same count (`newFh`). */
  opened(nodeid: number, file: FileHandle): number {
    const fh = this.newFh()
    this.files.set(fh, file)
    this.fileNode.set(fh, nodeid)
    const fhs = this.nodeFiles.get(nodeid)
    if (fhs) fhs.add(fh)
    else this.nodeFiles.set(nodeid, new Set([fh]))
    return fh
  }

  newFh(): number {
    return this.nextFh++
  }

  /** The file of `fh`, or EBADF. */
  file(fh: number): FileHandle {
    const f = this.files.get(fh)
    if (!f) throw fail('EBADF')
    return f
  }

  /** The file of `fh` if it is open: requests that fall back on the path without one. */
  get(fh: number): FileHandle | undefined {
    return this.files.get(fh)
  }

  /** Any open file of a node: for requests on a node whose names are all gone, or that the open inode answers without a walk. */
  ofNode(nodeid: number): FileHandle | undefined {
    const fhs = this.nodeFiles.get(nodeid)
    if (!fhs) return undefined
    for (const fh of fhs) return this.files.get(fh)
    return undefined
  }

  /** Forgets `fh`; the caller closes the file it returns. */
  released(fh: number): FileHandle | undefined {
    const file = this.files.get(fh)
    const nodeid = this.fileNode.get(fh)
    this.files.delete(fh)
    this.fileNode.delete(fh)
    const fhs = nodeid === undefined ? undefined : this.nodeFiles.get(nodeid)
    fhs?.delete(fh)
    if (fhs?.size === 0) this.nodeFiles.delete(nodeid!)
    return file
  }

  /** Forgets every open file; the caller closes them. */
  releaseAll(): FileHandle[] {
    const files = [...this.files.values()]
    this.files.clear()
    this.fileNode.clear()
    this.nodeFiles.clear()
    return files
  }
}
