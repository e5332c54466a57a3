import { constants } from 'node:os'

export type ErrnoCode =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EXDEV' | 'ENAMETOOLONG' | 'EINVAL'
  | 'EACCES' | 'EPERM' | 'EROFS' | 'EBADF' | 'EBUSY' | 'ELOOP' | 'EMLINK' | 'ENODATA' | 'ERANGE'
  | 'ENOTSUP' | 'EFBIG' | 'ESTALE' | 'EIO' | 'ENODEV' | 'ENOSPC'

/**
 * Codes that answer a question rather than report a fault (no such name, no such xattr, the
 * name is taken): a path walk, a lookup or the kernel's ask for security.capability before each
 * write makes them by the thousand, and capturing a stack trace was most of their cost. Their
 * message names the call and the path; other codes keep their trace.
 */
const ANSWERS: ReadonlySet<ErrnoCode> = new Set<ErrnoCode>(['ENOENT', 'ENODATA', 'EEXIST'])

/** An error shaped like node's fs errors: `code` is the errno name, `path` names what it concerns. */
export class FsError extends Error {
  readonly code: ErrnoCode
  readonly errno: number
  readonly syscall: string
  readonly path?: string
  readonly dest?: string

  constructor(code: ErrnoCode, syscall: string, path?: string, detail?: string, dest?: string) {
    const where = path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`
    const traceLimit = Error.stackTraceLimit
    if (ANSWERS.has(code)) Error.stackTraceLimit = 0
    try {
      super(`${code}: ${detail ?? describe(code)}, ${syscall}${where}`)
    } finally {
      Error.stackTraceLimit = traceLimit
    }
    this.name = 'FsError'
    this.code = code
    this.errno = -((constants.errno as Record<string, number>)[code] ?? 5)
    this.syscall = syscall
    if (path !== undefined) this.path = path
    if (dest !== undefined) this.dest = dest
  }
}

const DESCRIPTIONS: Partial<Record<ErrnoCode, string>> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  ENOTEMPTY: 'directory not empty',
  EXDEV: 'cross-device link not permitted',
  ENAMETOOLONG: 'name too long',
  EINVAL: 'invalid argument',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EBADF: 'bad file descriptor',
  EBUSY: 'resource busy',
  ELOOP: 'too many symbolic links encountered',
  EMLINK: 'too many links',
  ENODATA: 'no data available',
  ERANGE: 'result too large',
  ENOTSUP: 'operation not supported',
  EFBIG: 'file too large',
  ENODEV: 'no such device',
  ENOSPC: 'no space left on device',
}

function describe(code: ErrnoCode): string {
  return DESCRIPTIONS[code] ?? code
}

export function fsError(code: ErrnoCode, syscall: string, path?: string, detail?: string): FsError {
  return new FsError(code, syscall, path, detail)
}

/** Errors about the store and snapshots (not file-level): a clear code and message. */
export class StoreError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'StoreError'
    this.code = code
  }
}

export function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}
