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

/**
 * What one setattr changes; a field left out stays as it is. A time given as null is set to now.
 * `timesChecked`: the caller's right to set these times was checked already (by the kernel, for
 * a FUSE request: with the writeback cache it also writes back the times it kept for a writer,
 * who may write the file but not set its times).
 */
export interface AttrUpdate {
  /** A chown with either id given, -1 leaving that one as it is (a chown of -1, -1 still drops set-id bits). */
  uid?: number
  gid?: number
  mode?: number
  atime?: Timespec | null
  mtime?: Timespec | null
  timesChecked?: boolean
}

/**
 * Changes attributes as setattr(2) does, in the kernel's order: owner, then mode, then times,
 * each checked against the record the change before left, all written as one record. Answers
 * the node (copied up) whose attributes were changed.
 */
export async function setattr(ov: Overlay, creds: Creds, path: string, change: AttrUpdate, follow: boolean, syscall = 'setattr'): Promise<OvlNode> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, syscall, follow)
    const before = await ov.inodeOf(node)
    let rec = before
    if (change.uid !== undefined || change.gid !== undefined) rec = chownedRecord(creds, rec, change.uid ?? -1, change.gid ?? -1, path)
    if (change.mode !== undefined) {
      if (node.type === T.LNK) throw fsError('ENOTSUP', 'chmod', path)
      rec = { ...rec, mode: chmodResult(creds, rec, change.mode, path) }
    }
    if (change.atime !== undefined || change.mtime !== undefined) rec = timedRecord(creds, rec, change, path)
    if (rec !== before) await changeInode(ov, node, syscall, () => rec)
    return node
  })
}

function chownedRecord(creds: Creds, rec: InodeRecord, uid: number, gid: number, path: string): InodeRecord {
  checkChown(creds, rec, uid, gid, path)
  return {
    ...rec,
    uid: uid === -1 ? rec.uid : uid,
    gid: gid === -1 ? rec.gid : gid,
    // the kernel drops the bits on every chown of a non-dir, -1, -1 included
    mode: typeOf(rec.mode) !== T.LNK ? killPriv(creds, rec) : rec.mode,
  }
}

/** utimes: explicit times need ownership; setting both to now needs write access or ownership. */
function timedRecord(creds: Creds, rec: InodeRecord, change: AttrUpdate, path: string): InodeRecord {
  const toNow = change.atime === null && change.mtime === null
  if (!change.timesChecked && !isOwner(creds, rec) && !(toNow && permits(creds, rec, MAY_WRITE))) throw fsError(toNow ? 'EACCES' : 'EPERM', 'utimes', path)
  const now = nowTimespec()
  const time = (t: Timespec | null | undefined, kept: Timespec): Timespec => (t === undefined ? kept : t ?? now)
  return { ...rec, atime: time(change.atime, rec.atime), mtime: time(change.mtime, rec.mtime) }
}

export async function chmod(ov: Overlay, creds: Creds, path: string, mode: number, follow = true): Promise<void> {
  await setattr(ov, creds, path, { mode }, follow, 'chmod')
}

export async function chown(ov: Overlay, creds: Creds, path: string, uid: number, gid: number, follow = true): Promise<void> {
  await setattr(ov, creds, path, { uid, gid }, follow, 'chown')
}

export async function utimes(ov: Overlay, creds: Creds, path: string, atime: Timespec | null, mtime: Timespec | null, follow = true): Promise<void> {
  await setattr(ov, creds, path, { atime, mtime }, follow, 'utimes')
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
