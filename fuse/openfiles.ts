import type { FileHandle } from '../engine/index.js'
import { fail } from './replies.js'

/**
 * The files the kernel holds open, by the fh handed out at OPEN and CREATE, with the nodeid each
 * was opened through: an unlinked file is reached by its handles alone.
 */
export class OpenFiles {
  private readonly files = new Map<number, FileHandle>()
  private readonly fileNode = new Map<number, number>()
  private nextFh = 1

  /** A new fh for `file`; directories draw theirs from the same count (`newFh`). */
  opened(nodeid: number, file: FileHandle): number {
    const fh = this.newFh()
    this.files.set(fh, file)
    this.fileNode.set(fh, nodeid)
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

  /** Any open file of a node, for requests on a node whose names are all gone. */
  ofNode(nodeid: number): FileHandle | undefined {
    for (const [fh, node] of this.fileNode) if (node === nodeid) return this.files.get(fh)
    return undefined
  }

  /** Forgets `fh`; the caller closes the file it returns. */
  released(fh: number): FileHandle | undefined {
    const file = this.files.get(fh)
    this.files.delete(fh)
    this.fileNode.delete(fh)
    return file
  }

  /** Forgets every open file; the caller closes them. */
  releaseAll(): FileHandle[] {
    const files = [...this.files.values()]
    this.files.clear()
    this.fileNode.clear()
    return files
  }
}
