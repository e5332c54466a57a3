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
import type { LiveInode } from './live.js'

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

/** What one setattr changes (see AttrChanges of SnapshotFs); times as timespecs, null for now. */
export interface AttrUpdate {
  /** A chown with either id given, -1 leaving that one as it is (a chown of -1, -1 still drops set-id bits). */
  uid?: number
  gid?: number
  mode?: number
  atime?: Timespec | null
  mtime?: Timespec | null
  timesChecked?: boolean
}

/** The fields of an inode record that a setattr sets. */
type AttrFields = Partial<Pick<InodeRecord, 'uid' | 'gid' | 'mode' | 'atime' | 'mtime'>>

/**
 * Changes attributes as setattr(2) does, in the kernel's order: owner, then mode, then times,
 * each checked against the record the change before left, all written as one record. Answers
 * the node (copied up) whose attributes were changed.
 */
export async function setattr(ov: Overlay, creds: Creds, path: string, change: AttrUpdate, follow: boolean, syscall = 'setattr'): Promise<OvlNode> {
  return ov.env.lock.run(async () => {
    const node = await ov.resolve(path, creds, syscall, follow)
    const fields = attrFields(creds, await ov.inodeOf(node), node.type, change, path)
    // set on the record after copy-up, which keeps what the copy changed (copiedFrom, no origin)
    if (fields) await changeInode(ov, node, syscall, (r) => ({ ...r, ...fields }))
    return node
  })
}

/**
 * `setattr` of an inode open in the upper layer, with no walk of its path: answers the record
 * after, or undefined when the inode is not in the upper layer or has no name left (the caller
 * goes by its path then, which copies up or fails as a path does).
 */
export async function setattrOpen(ov: Overlay, creds: Creds, live: LiveInode, change: AttrUpdate): Promise<InodeRecord | undefined> {
  return ov.env.lock.run(async () => {
    const rec = await live.current()
    if (!live.inUpper || rec.nlink === 0 || ov.live.get(live.ino) !== live || !ov.upper) return undefined
    const fields = attrFields(creds, rec, typeOf(rec.mode), change, live.path)
    if (fields) {
      const txn = ov.txn()
      writeInode(ov, txn, live.ino, { ...rec, ...fields, ctime: nowTimespec() })
      await txn.commit()
    }
    return live.current()
  })
}

/** The fields a setattr sets on `rec` (undefined: none), each step checked on the one before. */
function attrFields(creds: Creds, rec: InodeRecord, type: number, change: AttrUpdate, path: string): AttrFields | undefined {
  let fields: AttrFields | undefined
  let cur = rec
  if (change.uid !== undefined || change.gid !== undefined) {
    fields = chownFields(creds, cur, change.uid ?? -1, change.gid ?? -1, type, path)
    cur = { ...cur, ...fields }
  }
  if (change.mode !== undefined) {
    if (type === T.LNK) throw fsError('ENOTSUP', 'chmod', path)
    fields = { ...fields, mode: chmodResult(creds, cur, change.mode, path) }
    cur = { ...cur, ...fields }
  }
  if (change.atime !== undefined || change.mtime !== undefined) fields = { ...fields, ...timeFields(creds, cur, change, path) }
  return fields
}

function chownFields(creds: Creds, rec: InodeRecord, uid: number, gid: number, type: number, path: string): AttrFields {
  checkChown(creds, rec, uid, gid, path)
  return {
    uid: uid === -1 ? rec.uid : uid,
    gid: gid === -1 ? rec.gid : gid,
    // the kernel drops the bits on every chown of a non-dir, -1, -1 included
    mode: type !== T.LNK ? killPriv(creds, rec) : rec.mode,
  }
}

/** utimes: explicit times need ownership; setting both to now needs write access or ownership. */
function timeFields(creds: Creds, rec: InodeRecord, change: AttrUpdate, path: string): AttrFields {
  const toNow = change.atime === null && change.mtime === null
  if (!change.timesChecked && !isOwner(creds, rec) && !(toNow && permits(creds, rec, MAY_WRITE))) throw fsError(toNow ? 'EACCES' : 'EPERM', 'utimes', path)
  const now = nowTimespec()
  const time = (t: Timespec | null | undefined, kept: Timespec): Timespec => (t === undefined ? kept : t ?? now)
  return { atime: time(change.atime, rec.atime), mtime: time(change.mtime, rec.mtime) }
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

/**
 * An xattr the caller cannot see at all: getxattr(2) answers it as absent (ENODATA), and
 * setxattr(2) refuses it (EPERM). trusted.* is root's; user.* lives on files and dirs only.
 */
function hiddenXattr(creds: Creds, rec: InodeRecord, name: string): boolean {
  if (name.startsWith('trusted.')) return creds.uid !== 0
  if (!name.startsWith('user.')) return false
  const t = typeOf(rec.mode)
  return t !== T.REG && t !== T.DIR
}

/** Who may read or write an xattr, by namespace (xattr(7)). */
function checkXattrAccess(creds: Creds, rec: InodeRecord, name: string, write: boolean, syscall: string, path: string): void {
  if (hiddenXattr(creds, rec, name)) throw fsError(write ? 'EPERM' : 'ENODATA', syscall, path)
  if (name.startsWith('trusted.')) return
  if (name.startsWith('user.')) {
    const t = typeOf(rec.mode)
    if (write && rec.mode & 0o1000 && t === T.DIR && !isOwner(creds, rec)) throw fsError('EPERM', syscall, path)
  }
  if (write && name.startsWith('security.') && creds.uid !== 0) throw fsError('EPERM', syscall, path)
  checkAccess(creds, rec, write ? MAY_WRITE : 4, syscall, path)
}

export async function getxattr(ov: Overlay, creds: Creds, path: string, name: string, follow = true): Promise<Buffer> {
  return xattrValue(creds, await ov.inodeOf(await ov.resolve(path, creds, 'getxattr', follow)), name, path)
}

/** `getxattr` that answers undefined where getxattr(2) answers ENODATA. */
export async function findxattr(ov: Overlay, creds: Creds, path: string, name: string, follow = true): Promise<Buffer | undefined> {
  return findXattrValue(creds, await ov.inodeOf(await ov.resolve(path, creds, 'getxattr', follow)), name, path)
}

/** The value of xattr `name` of the inode `rec` (named `path` in errors) as `creds` may read it. */
export function xattrValue(creds: Creds, rec: InodeRecord, name: string, path: string): Buffer {
  const v = findXattrValue(creds, rec, name, path)
  if (v === undefined) throw fsError('ENODATA', 'getxattr', path, `no xattr '${name}'`)
  return v
}

/** `xattrValue`, undefined where it would fail with ENODATA (no such xattr, or one hidden from `creds`). */
export function findXattrValue(creds: Creds, rec: InodeRecord, name: string, path: string): Buffer | undefined {
  checkXattrName(name, 'getxattr', path)
  if (hiddenXattr(creds, rec, name)) return undefined
  checkXattrAccess(creds, rec, name, false, 'getxattr', path)
  const v = rec.xattrs?.[name]
  return v === undefined ? undefined : Buffer.from(v)
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
