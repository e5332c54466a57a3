import { constants } from 'node:os'
import type { Stats } from '../engine/index.js'
import { xattrSizeOut, type Attr } from './kernel.js'

/**
 * What a handler answers: a reply body (in pieces for CREATE's entry + open), nothing (an empty
 * reply), a READ's data already framed behind its header, or an expected failure (`answer`).
 * Other failures are thrown (`fail`).
 */
export type Reply = Buffer | Buffer[] | Framed | Failure | undefined

/** A reply already laid out in pieces, header first (READ: the header, then views of the data). */
export class Framed {
  constructor(readonly parts: Buffer[]) {}
}

const ERRNO = constants.errno as Record<string, number>

/** An error the kernel gets as an errno: the engine's FsError codes, anything else as EIO. */
class Errno extends Error {
  constructor(readonly errno: number) { super(`errno ${errno}`) }
}

export const fail = (code: string): Error => new Errno(ERRNO[code] ?? ERRNO.EIO!)

/**
 * A failure that is an answer, returned rather than thrown: a missing name (LOOKUP) or xattr
 * (GETXATTR), which tar, a compiler's include search or the kernel's ask for
 * security.capability before each write meet by the thousand. A rejected promise costs
 * microseconds at each async function it passes through (V8 reports every rejection that has no
 * handler yet to Node, which tracks it until one is attached); a returned value costs nothing.
 */
export class Failure {
  constructor(readonly errno: number) {}
}

export const answer = (code: string): Failure => new Failure(ERRNO[code] ?? ERRNO.EIO!)

/** The errno a failed request is answered with; what is not the engine's own error is logged. */
export function errnoOf(err: unknown): number {
  if (err instanceof Errno) return err.errno
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && ERRNO[code] !== undefined) {
    // damaged or missing data: the reader gets EIO alone, the log says which snapshot, path and chunk
    if (code === 'EIO') process.stderr.write(`strata fuse: ${(err as Error).message}\n`)
    return ERRNO[code]!
  }
  process.stderr.write(`strata fuse: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  return ERRNO.EIO!
}

/** The engine's error code of a failure, to tell ENOENT or ENODATA apart from others. */
export const codeOf = (err: unknown): string | undefined => (err as { code?: string }).code

export function toAttr(st: Stats): Attr {
  return {
    ino: st.ino, size: st.size, blocks: st.blocks, atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
    mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: st.rdev, blksize: st.blksize,
  }
}

/** A getxattr/listxattr answer: the size alone when asked with size 0, ERANGE when it does not fit. */
export function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return xattrSizeOut(value.length)
  if (value.length > size) throw fail('ERANGE')
  return value
}
