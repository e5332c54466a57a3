import { createHash } from 'node:crypto'
import { lstatSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { CliError } from './errors.js'

/** Linux's limit on a unix socket path (sun_path holds 108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH = 107

/**
 * The directory of a user's sockets, logs and mount records: `$STRATA_RUNTIME_DIR`, else
 * `/run/strata` for root, else `$XDG_RUNTIME_DIR/strata`, else `<tmpdir>/strata-<uid>`.
 */
export function runtimeDir(): string {
  const env = process.env.STRATA_RUNTIME_DIR
  if (env) return resolve(env)
  const uid = process.getuid?.() ?? -1
  if (uid === 0) return '/run/strata'
  const xdg = process.env.XDG_RUNTIME_DIR
  if (xdg) return join(resolve(xdg), 'strata')
  return join(tmpdir(), `strata-${uid}`)
}

/**
 * The runtime dir, made (mode 0700) if missing. A dir someone else owns or may write is refused:
 * a socket put there by another user would receive our commands.
 */
export function ensureRuntimeDir(): string {
  const dir = runtimeDir()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = lstatSync(dir)
  if (!st.isDirectory()) throw new CliError(`runtime dir ${dir} is not a directory`)
  const uid = process.getuid?.()
  if (uid !== undefined && st.uid !== uid) throw new CliError(`runtime dir ${dir} belongs to uid ${st.uid}, not to this user (${uid}); set STRATA_RUNTIME_DIR to a dir of your own`)
  if ((st.mode & 0o022) !== 0) throw new CliError(`runtime dir ${dir} may be written by other users (mode ${(st.mode & 0o7777).toString(8)}); set STRATA_RUNTIME_DIR to a private dir`)
  return dir
}

/** A short name for an absolute path, the same in every process (paths can be too long for a socket name). */
export function pathHash(path: string): string {
  return createHash('sha256').update(resolve(path)).digest('hex').slice(0, 16)
}

/** The socket of the server holding the store at `storePath` (absolute). */
export function storeSocketPath(storePath: string): string {
  return checkedSocketPath(join(runtimeDir(), `store-${pathHash(storePath)}.sock`))
}

export function checkedSocketPath(path: string): string {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new CliError(`socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes; set STRATA_RUNTIME_DIR to a shorter dir`)
  }
  return path
}
