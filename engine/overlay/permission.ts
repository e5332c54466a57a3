import type { Creds } from '../types.js'
import { fsError } from '../errors.js'
import { T, typeOf } from './node.js'

/**
 * Permission checks on the merged inode with the caller's credentials, as the kernel's
 * generic_permission does on the overlay inode. (The second level, the mounter's creds on the
 * real inode, is the store itself for store layers; directory layers get it from the host kernel.)
 */
export const MAY_EXEC = 1
export const MAY_WRITE = 2
export const MAY_READ = 4

interface Owned {
  mode: number
  uid: number
  gid: number
}

export const inGroup = (creds: Creds, gid: number): boolean => creds.gid === gid || (creds.groups ?? []).includes(gid)

export function permits(creds: Creds, ino: Owned, mask: number): boolean {
  if (creds.uid === 0) {
    // root passes everything except executing a non-directory with no x bit at all
    if (mask & MAY_EXEC && typeOf(ino.mode) !== T.DIR && (ino.mode & 0o111) === 0) return false
    return true
  }
  const bits = creds.uid === ino.uid ? ino.mode >> 6 : inGroup(creds, ino.gid) ? ino.mode >> 3 : ino.mode
  return (bits & mask & 7) === (mask & 7)
}

export function checkAccess(creds: Creds, ino: Owned, mask: number, syscall: string, path: string): void {
  if (!permits(creds, ino, mask)) throw fsError('EACCES', syscall, path)
}

export const isOwner = (creds: Creds, ino: Owned): boolean => creds.uid === 0 || creds.uid === ino.uid

/** Sticky directories: only the owner of the entry, of the dir, or root may remove or rename it. */
export function checkSticky(creds: Creds, dir: Owned, victim: Owned, syscall: string, path: string): void {
  if (!(dir.mode & 0o1000) || creds.uid === 0) return
  if (creds.uid === victim.uid || creds.uid === dir.uid) return
  throw fsError('EPERM', syscall, path)
}

/** chmod: owner or root; a non-root caller outside the file's group loses the setgid bit. */
export function chmodResult(creds: Creds, ino: Owned, mode: number, path: string): number {
  if (!isOwner(creds, ino)) throw fsError('EPERM', 'chmod', path)
  let perm = mode & 0o7777
  // as setattr_prepare: dirs too (verified on Linux 6.x)
  if (creds.uid !== 0 && !inGroup(creds, ino.gid)) perm &= ~0o2000
  return (ino.mode & ~0o7777) | perm
}

/** chown: root changes anything; an owner may change the group to one of their own groups. */
export function checkChown(creds: Creds, ino: Owned, uid: number, gid: number, path: string): void {
  if (creds.uid === 0) return
  const owner = creds.uid === ino.uid
  // As the kernel's chown_ok and chgrp_ok: an id left at -1 asks for nothing.
  const uidOk = uid === -1 || (owner && uid === ino.uid)
  const gidOk = gid === -1 || (owner && (gid === ino.gid || inGroup(creds, gid)))
  // Every chown drops setuid (see killPriv): a mode change, which only the owner may make.
  const dropsBits = killPriv(creds, ino) !== ino.mode
  if (!uidOk || !gidOk || (dropsBits && !owner)) throw fsError('EPERM', 'chown', path)
}

/**
 * Mode after a chown of a non-dir (any caller) or a write or truncate by a non-root caller: setuid
 * goes, and setgid goes when the file is group-executable or `creds` is outside its group.
 */
export function killPriv(creds: Creds, ino: Owned): number {
  if (typeOf(ino.mode) === T.DIR) return ino.mode
  let m = ino.mode & ~0o4000
  // setattr_should_drop_sgid (Linux 6.x): also when the caller is outside the file's group
  if (m & 0o2000 && (m & 0o010 || (creds.uid !== 0 && !inGroup(creds, ino.gid)))) m &= ~0o2000
  return m
}
