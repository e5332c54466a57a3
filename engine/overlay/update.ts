import type { InodeRecord } from '../store/records.js'
import { nowTimespec } from '../store/records.js'
import type { Creds } from '../types.js'
import { T, isDirType, type OvlNode, type UpperTxn } from './node.js'
import { MAY_EXEC, MAY_WRITE, checkAccess, inGroup } from './permission.js'
import type { Overlay } from './overlay.js'

/** Writes an upper inode record, keeping an open copy of the inode in step. */
export function writeInode(ov: Overlay, txn: UpperTxn, ino: number, rec: InodeRecord): void {
  ov.upper!.putInode(txn, ino, rec)
  ov.live.get(ino)?.replaceRecord(rec)
}

/** Directory modified: new mtime and ctime, and its link count moved by `nlinkDelta`. */
export function touchDir(ov: Overlay, txn: UpperTxn, dir: OvlNode, rec: InodeRecord, nlinkDelta = 0): InodeRecord {
  const next = touchedDirRecord(rec, nlinkDelta)
  writeInode(ov, txn, dir.ino, next)
  return next
}

/** The record of a directory after a name was added or removed in it. */
export function touchedDirRecord(rec: InodeRecord, nlinkDelta = 0): InodeRecord {
  const now = nowTimespec()
  return { ...rec, mtime: now, ctime: now, nlink: Math.max(1, rec.nlink + nlinkDelta) }
}

/** Write and search permission on a directory, needed to add or remove names in it. */
export function checkDirWrite(creds: Creds, dirRec: InodeRecord, syscall: string, path: string): void {
  checkAccess(creds, dirRec, MAY_WRITE | MAY_EXEC, syscall, path)
}

/** A fresh inode as the kernel's inode_init_owner makes it: setgid dirs pass their group on. */
export function newInodeRecord(creds: Creds, dirRec: InodeRecord, mode: number, extra: Partial<InodeRecord> = {}): InodeRecord {
  const now = nowTimespec()
  let gid = creds.gid
  let m = mode
  if (dirRec.mode & 0o2000) {
    gid = dirRec.gid
    if ((m & 0o170000) === T.DIR << 12) m |= 0o2000
    // mode_strip_sgid (Linux 6.x): only a group-executable setgid file is stripped
    else if ((m & 0o2010) === 0o2010 && !inGroup(creds, gid) && creds.uid !== 0) m &= ~0o2000
  }
  return { mode: m, uid: creds.uid, gid, rdev: 0, size: 0, nlink: isDirType((m & 0o170000) >> 12) ? 2 : 1, atime: now, mtime: now, ctime: now, ...extra }
}
