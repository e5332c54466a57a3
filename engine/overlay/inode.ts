import type { InodeRecord, Timespec } from '../store/records.js'
import { nowTimespec } from '../store/records.js'
import type { Creds } from '../types.js'
import { fsError } from '../errors.js'
import { T, typeOf, type OvlNode } from './node.js'
import { MAY_WRITE, chmodResult, checkAccess, checkChown, isOwner, killPriv, permits } from './permission.js'
import { copyUp } from './copyup.js'
import { writeInode } from './update.js'
import { isOverlayPrivateXattr } from './whiteout.js'
import type { Overlay } from './overlay.js'

/**
 * Attribute and xattr changes (the kernel's fs/overlayfs/inode.c): each copies the inode up
 * (metadata only) and rewrites its upper record.
 */

async function changeInode(ov: Overlay, node: OvlNode, syscall: string, change: (rec: InodeRecord) => InodeRecord): Promise<void> {
  ov.writable(syscall, node.path)
  await copyUp(ov, node, syscall)
  const rec = await ov.inodeOf(node)
  const txn = ov.txn()
  writeInode(ov, txn, node.ino, { ...change(rec), ctime: nowTimespec() })
  await txn.commit()
}

export async function chmod(ov: Overlay, creds: Creds, path: string, mode: number, follow = true): Promise<void> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, 'chmod', follow)
    if (node.type === T.LNK) throw fsError('ENOTSUP', 'chmod', path)
    const rec = await ov.inodeOf(node)
    const next = chmodResult(creds, rec, mode, path)
    await changeInode(ov, node, 'chmod', (r) => ({ ...r, mode: next }))
  })
}

export async function chown(ov: Overlay, creds: Creds, path: string, uid: number, gid: number, follow = true): Promise<void> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, 'chown', follow)
    const rec = await ov.inodeOf(node)
    checkChown(creds, rec, uid, gid, path)
    await changeInode(ov, node, 'chown', (r) => ({
      ...r,
      uid: uid === -1 ? r.uid : uid,
      gid: gid === -1 ? r.gid : gid,
      // the kernel drops the bits on every chown of a non-dir, -1, -1 included
      mode: typeOf(r.mode) !== T.LNK ? killPriv(creds, r) : r.mode,
    }))
  })
}

/** utimes: explicit times need ownership; setting both to now needs write access or ownership. */
export async function utimes(ov: Overlay, creds: Creds, path: string, atime: Timespec | null, mtime: Timespec | null, follow = true): Promise<void> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, 'utimes', follow)
    const rec = await ov.inodeOf(node)
    const toNow = atime === null && mtime === null
    if (!isOwner(creds, rec) && !(toNow && permits(creds, rec, MAY_WRITE))) throw fsError(toNow ? 'EACCES' : 'EPERM', 'utimes', path)
    const now = nowTimespec()
    await changeInode(ov, node, 'utimes', (r) => ({ ...r, atime: atime ?? now, mtime: mtime ?? now }))
  })
}

const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.', 'system.']

/** The name is in a namespace of xattr(7), with something after the prefix. */
export const isKnownXattrNamespace = (name: string): boolean => XATTR_NAMESPACES.some((p) => name.startsWith(p) && name.length > p.length)

function checkXattrName(name: string, syscall: string, path: string): void {
  if (typeof name !== 'string' || name.length === 0) throw fsError('EINVAL', syscall, path, 'empty xattr name')
  if (Buffer.byteLength(name) > 255) throw fsError('ERANGE', syscall, path, 'xattr name too long')
  if (!isKnownXattrNamespace(name)) throw fsError('ENOTSUP', syscall, path, `xattr '${name}' is in no known namespace`)
  // The overlay's own xattrs are not for callers, as the kernel hides trusted.overlay.*
  if (isOverlayPrivateXattr(name)) throw fsError('ENOTSUP', syscall, path, `xattr '${name}' is reserved for the overlay`)
}

/** Who may read or write an xattr, by namespace (xattr(7)). */
function checkXattrAccess(creds: Creds, rec: InodeRecord, name: string, write: boolean, syscall: string, path: string): void {
  if (name.startsWith('trusted.')) {
    if (creds.uid !== 0) throw fsError(write ? 'EPERM' : 'ENODATA', syscall, path)
    return
  }
  if (name.startsWith('user.')) {
    const t = typeOf(rec.mode)
    if (t !== T.REG && t !== T.DIR) throw fsError(write ? 'EPERM' : 'ENODATA', syscall, path)
    if (write && rec.mode & 0o1000 && t === T.DIR && !isOwner(creds, rec)) throw fsError('EPERM', syscall, path)
  }
  if (write && name.startsWith('security.') && creds.uid !== 0) throw fsError('EPERM', syscall, path)
  checkAccess(creds, rec, write ? MAY_WRITE : 4, syscall, path)
}

export async function getxattr(ov: Overlay, creds: Creds, path: string, name: string, follow = true): Promise<Buffer> {
  const node = await ov.resolve(path, creds, 'getxattr', follow)
  checkXattrName(name, 'getxattr', path)
  const rec = await ov.inodeOf(node)
  checkXattrAccess(creds, rec, name, false, 'getxattr', path)
  const v = rec.xattrs?.[name]
  if (v === undefined) throw fsError('ENODATA', 'getxattr', path, `no xattr '${name}'`)
  return Buffer.from(v)
}

export async function listxattr(ov: Overlay, creds: Creds, path: string, follow = true): Promise<string[]> {
  const node = await ov.resolve(path, creds, 'listxattr', follow)
  const rec = await ov.inodeOf(node)
  return Object.keys(rec.xattrs ?? {}).filter((n) => !isOverlayPrivateXattr(n) && (creds.uid === 0 || !n.startsWith('trusted.')))
}

export async function setxattr(ov: Overlay, creds: Creds, path: string, name: string, value: Uint8Array, flags = 0, follow = true): Promise<void> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, 'setxattr', follow)
    checkXattrName(name, 'setxattr', path)
    if (value.length > 65536) throw fsError('ERANGE', 'setxattr', path, 'xattr value over 64 KiB')
    const rec = await ov.inodeOf(node)
    checkXattrAccess(creds, rec, name, true, 'setxattr', path)
    const exists = rec.xattrs?.[name] !== undefined
    if (flags & XATTR_CREATE && exists) throw fsError('EEXIST', 'setxattr', path)
    if (flags & XATTR_REPLACE && !exists) throw fsError('ENODATA', 'setxattr', path)
    await changeInode(ov, node, 'setxattr', (r) => ({ ...r, xattrs: { ...(r.xattrs ?? {}), [name]: Buffer.from(value) } }))
  })
}

export async function removexattr(ov: Overlay, creds: Creds, path: string, name: string, follow = true): Promise<void> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, 'removexattr', follow)
    checkXattrName(name, 'removexattr', path)
    const rec = await ov.inodeOf(node)
    checkXattrAccess(creds, rec, name, true, 'removexattr', path)
    if (rec.xattrs?.[name] === undefined) throw fsError('ENODATA', 'removexattr', path, `no xattr '${name}'`)
    await changeInode(ov, node, 'removexattr', (r) => {
      const x = { ...(r.xattrs ?? {}) }
      delete x[name]
      return { ...r, xattrs: Object.keys(x).length > 0 ? x : undefined }
    })
  })
}
