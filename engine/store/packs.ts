import { closeSync, fsyncSync, openSync, read, readSync, readdirSync, mkdirSync, statSync, constants } from 'node:fs'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { isCode } from '../errors.js'

/**
 * Where a packed chunk's body is: `length` bytes at `offset` of pack file `pack`.
 * Stored under the chunk's `P/` key as 16 bytes: pack u32, offset u64, length u32 (big-endian).
 */
export interface PackPointer {
  pack: number
  offset: number
  length: number
}

export const POINTER_SIZE = 16

export function encodePointer(p: PackPointer): Buffer {
  const b = Buffer.allocUnsafe(POINTER_SIZE)
  b.writeUInt32BE(p.pack, 0)
  b.writeBigUInt64BE(BigInt(p.offset), 4)
  b.writeUInt32BE(p.length, 12)
  return b
}

export function decodePointer(b: Uint8Array): PackPointer {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  if (v.length !== POINTER_SIZE) throw new Error(`pack pointer of ${v.length} bytes (expected ${POINTER_SIZE})`)
  return { pack: v.readUInt32BE(0), offset: Number(v.readBigUInt64BE(4)), length: v.readUInt32BE(12) }
}

/**
 * A pack grows to about this size before the next one is started: small enough that gc can
 * rewrite one whose chunks are mostly gone without copying much, large enough that a store of
 * many GiB keeps few files open.
 */
export const PACK_TARGET = 256 * 1024 * 1024

/**
 * Writes `bodies` one after another at `pos`, going on after a short write: the call that
 * cannot write anything more fails with the filesystem's own error (ENOSPC on a full disk).
 */
async function writeAllAt(handle: FileHandle, bodies: Buffer[], pos: number): Promise<void> {
  let rest = bodies
  while (rest.length > 0) {
    // writev takes at most IOV_MAX (1024) buffers per call
    const part = rest.slice(0, 1024)
    let { bytesWritten } = await handle.writev(part, pos)
    if (bytesWritten === 0) throw Object.assign(new Error(`no space left on device: write to pack at ${pos} wrote nothing`), { code: 'ENOSPC' })
    pos += bytesWritten
    let i = 0
    while (i < part.length && bytesWritten >= part[i].length) bytesWritten -= part[i++].length
    rest = i < part.length ? [part[i].subarray(bytesWritten), ...part.slice(i + 1), ...rest.slice(part.length)] : rest.slice(part.length)
  }
}

const PACK_NAME = /^([0-9a-f]{8})\.pack$/
export const packFileName = (id: number): string => `${id.toString(16).padStart(8, '0')}.pack`

interface PackWriter {
  id: number
  handle: FileHandle
  /** Bytes taken, including appends still being written. */
  size: number
  /** Appends under way; the handle of a pack no longer written is closed when they end. */
  appends: number
}

/** Raised by a read of a pack gc has removed; the caller looks the chunk up again. */
export class PackGoneError extends Error {
  constructor(readonly pack: number) {
    super(`pack ${packFileName(pack)} is gone`)
  }
}

/**
 * The pack files of a store: append-only files holding chunk bodies one after another in the
 * order they were written, so that a file written in one go is read back in one sequential
 * sweep (the kernel's read-ahead works, and one read fetches many chunks). LevelDB holds only
 * where each chunk is (`P/` keys); bytes of a pack that no pointer names (a batch that never
 * committed, chunks gc dropped) are garbage that gc's repacking reclaims.
 *
 * Order of durability: a batch's chunk bodies are written and fdatasync'ed before the LevelDB
 * batch naming them is written, so no crash leaves a pointer to bytes that are not on disk.
 */
export class Packs {
  /** Descriptors of packs being read; a retired pack's is closed when its last read ends. */
  private readonly readers = new Map<number, { fd: number; reads: number; retired: boolean }>()
  private writer?: PackWriter
  private opening?: Promise<PackWriter>

  private constructor(readonly dir: string, private nextId: number) {}

  /** Opening changes nothing on disk: the directory is made with the first pack. */
  static open(dir: string): Packs {
    const ids = Packs.idsIn(dir)
    return new Packs(dir, ids.length ? Math.max(...ids) + 1 : 0)
  }

  private static idsIn(dir: string): number[] {
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch (err) {
      if (isCode(err, 'ENOENT')) return []
      throw err
    }
    return names.flatMap((n) => {
      const m = PACK_NAME.exec(n)
      return m ? [parseInt(m[1], 16)] : []
    })
  }

  /** Every pack file on disk with its size. */
  list(): { id: number; size: number }[] {
    return Packs.idsIn(this.dir).sort((a, b) => a - b).map((id) => ({ id, size: statSync(this.path(id)).size }))
  }

  /** The pack new chunks go to, if one is open (gc leaves it alone). */
  get writing(): number | undefined {
    return this.writer?.id
  }

  path(id: number): string {
    return join(this.dir, packFileName(id))
  }

  /**
   * Appends `bodies` to the current pack, durably, and returns where each landed. Space is
   * taken before the write starts, so appends running at once never overlap.
   */
  async append(bodies: Buffer[]): Promise<PackPointer[]> {
    let total = 0
    for (const b of bodies) total += b.length
    const w = await this.writerFor(total)
    const start = w.size
    w.size += total
    w.appends++
    try {
      const out: PackPointer[] = []
      let offset = start
      for (const b of bodies) {
        out.push({ pack: w.id, offset, length: b.length })
        offset += b.length
      }
      await writeAllAt(w.handle, bodies, start)
      await w.handle.datasync()
      return out
    } catch (err) {
      await this.abandonTail(w, start, total)
      const e = err as { message?: unknown; code?: unknown }
      throw Object.assign(new Error(`${String(e.message)} (appending ${total} bytes to ${this.path(w.id)})`), { code: e.code, cause: err })
    } finally {
      if (--w.appends === 0 && w !== this.writer) await w.handle.close()
    }
  }

  /**
   * After a failed append: the bytes it wrote must not stay where a later append's pointers
   * would be taken for them, nor hold the space. The last append of the pack is cut off again
   * and its space handed back to the next; one followed by others (running at once) leaves a
   * gap, and the pack is ended so nothing more is appended after the gap (gc reclaims it).
   */
  private async abandonTail(w: PackWriter, start: number, total: number): Promise<void> {
    if (w.size === start + total) {
      try {
        await w.handle.truncate(start)
        w.size = start
        return
      } catch { /* fall through: end the pack */ }
    }
    if (this.writer === w) this.writer = undefined
  }

  private async writerFor(bytes: number): Promise<PackWriter> {
    if (this.writer && (this.writer.size === 0 || this.writer.size + bytes <= PACK_TARGET)) return this.writer
    if (!this.opening) {
      this.opening = (async () => {
        const id = this.nextId++
        mkdirSync(this.dir, { recursive: true })
        const handle = await open(this.path(id), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644)
        // the new name must survive a crash before any pointer into the file does
        const dirFd = openSync(this.dir, 'r')
        try { fsyncSync(dirFd) } finally { closeSync(dirFd) }
        const old = this.writer
        this.writer = { id, handle, size: 0, appends: 0 }
        if (old && old.appends === 0) await old.handle.close()
        return this.writer
      })().finally(() => { this.opening = undefined })
    }
    await this.opening
    return this.writerFor(bytes)
  }

  /**
   * Ends the pack being written: the next append starts a new one. gc calls it so that the
   * pack a long-running process writes to can be rewritten or deleted like any other.
   */
  async seal(): Promise<void> {
    await this.opening?.catch(() => undefined)
    const w = this.writer
    this.writer = undefined
    // appends still under way close it when they end (see append)
    if (w && w.appends === 0) await w.handle.close()
  }

  /** Reads a chunk on the calling thread. */
  readSync(p: PackPointer): Buffer {
    const r = this.reader(p.pack)
    r.reads++
    try {
      const out = Buffer.allocUnsafe(p.length)
      const n = readSync(r.fd, out, 0, p.length, p.offset)
      if (n !== p.length) throw new Error(`pack ${packFileName(p.pack)} ends before ${p.offset + p.length}`)
      return out
    } finally {
      this.done(p.pack, r)
    }
  }

  /** Reads `length` bytes at `offset` of a pack on libuv's pool (several chunks in one read). */
  async readSpan(pack: number, offset: number, length: number): Promise<Buffer> {
    const r = this.reader(pack)
    r.reads++
    try {
      const out = Buffer.allocUnsafe(length)
      let got = 0
      while (got < length) {
        const bytesRead = await new Promise<number>((res, rej) =>
          read(r.fd, out, got, length - got, offset + got, (err, n) => (err ? rej(err) : res(n))))
        if (bytesRead === 0) throw new Error(`pack ${packFileName(pack)} ends before ${offset + length}`)
        got += bytesRead
      }
      return out
    } finally {
      this.done(pack, r)
    }
  }

  private reader(pack: number): { fd: number; reads: number; retired: boolean } {
    let r = this.readers.get(pack)
    if (!r) {
      let fd: number
      try {
        fd = openSync(this.path(pack), 'r')
      } catch (err) {
        if (isCode(err, 'ENOENT')) throw new PackGoneError(pack)
        throw err
      }
      r = { fd, reads: 0, retired: false }
      this.readers.set(pack, r)
    }
    return r
  }

  private done(pack: number, r: { fd: number; reads: number; retired: boolean }): void {
    if (--r.reads === 0 && r.retired) closeSync(r.fd)
  }

  /**
   * Removes a pack no pointer names any more. A read already under way finishes on its open
   * descriptor; a later one finds the pack gone and looks its chunk up again.
   */
  async remove(pack: number): Promise<void> {
    if (this.writer?.id === pack) throw new Error(`pack ${packFileName(pack)} is being written`)
    const r = this.readers.get(pack)
    if (r) {
      this.readers.delete(pack)
      r.retired = true
      if (r.reads === 0) closeSync(r.fd)
    }
    try {
      await unlink(this.path(pack))
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err
    }
  }

  async close(): Promise<void> {
    await this.seal()
    // a read still under way (read-ahead racing the close) finishes on its descriptor
    for (const r of this.readers.values()) {
      r.retired = true
      if (r.reads === 0) closeSync(r.fd)
    }
    this.readers.clear()
  }
}
