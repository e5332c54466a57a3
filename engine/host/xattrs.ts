import { getAttributeSync, listAttributesSync, setAttribute, setAttributeSync } from 'fs-xattr'
import { T } from '../overlay/node.js'
import { isOverlayPrivateXattr } from '../overlay/whiteout.js'
import { isCode } from '../errors.js'
import { hostError } from './io.js'

/** Extended attributes by full name. */
export type Xattrs = Record<string, Buffer>

/**
 * Extended attributes of a host file in every namespace the caller may read. Symlinks have none
 * here: the xattr binding follows symlinks, so it would report the target's. The overlay's own
 * `trusted.overlay.*` (present when the host dir is an overlay layer) are not file data; with
 * `withOverlay` they are returned too, for a reader of the kernel's layer format to interpret.
 * Blocking calls, as for small files' data (io.ts): most files have no xattrs, and the answer
 * takes a few microseconds, a trip through the thread pool far longer.
 */
export function readHostXattrs(path: string, type: number, withOverlay = false): Xattrs | undefined {
  if (type === T.LNK) return undefined
  let names: string[]
  try {
    names = listAttributesSync(path)
  } catch (err) {
    if (isCode(err, 'ENOTSUP') || isCode(err, 'EOPNOTSUPP')) return {}
    throw hostError(err, 'listxattr', path)
  }
  const out: Xattrs = {}
  for (const n of names.sort()) {
    if (!withOverlay && isOverlayPrivateXattr(n)) continue
    try {
      out[n] = getAttributeSync(path, n)
    } catch (err) {
      if (isCode(err, 'ENODATA')) continue // removed since it was listed
      throw hostError(err, 'getxattr', path)
    }
  }
  return out
}

export function sameXattrs(a: Xattrs | undefined, b: Xattrs | undefined): boolean {
  const ka = Object.keys(a ?? {}).sort()
  const kb = Object.keys(b ?? {}).sort()
  if (ka.length !== kb.length) return false
  return ka.every((k, i) => k === kb[i] && Buffer.from(a![k]).equals(Buffer.from(b![k])))
}

/**
 * Whether a process may write an xattr of this name onto a host file: root writes every
 * namespace, others only user.* and ACLs (trusted.* and security.* need privilege).
 */
export const hostMayWriteXattr = (name: string, asRoot: boolean): boolean =>
  asRoot || name.startsWith('user.') || name.startsWith('system.posix_acl_')

export async function writeHostXattr(path: string, name: string, value: Buffer): Promise<void> {
  await setAttribute(path, name, value).catch((err: unknown) => { throw hostError(err, 'setxattr', path) })
}

/** writeHostXattr with a blocking call. */
export function writeHostXattrSync(path: string, name: string, value: Buffer): void {
  try {
    setAttributeSync(path, name, value)
  } catch (err) {
    throw hostError(err, 'setxattr', path)
  }
}
