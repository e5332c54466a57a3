/**
 * The permission rules of the reference model, as Linux 6.x applies them (generic_permission,
 * fs/attr.c, fs/namei.c), for callers with no capabilities, or root with all of them.
 */

export interface Caller {
  uid: number
  gid: number
  groups: number[]
}

/** Who runs an op: root, a user with a supplementary group, and another user. */
export const CALLERS: readonly Caller[] = [
  { uid: 0, gid: 0, groups: [] },
  { uid: 1000, gid: 1000, groups: [1001] },
  { uid: 1001, gid: 1001, groups: [] },
]

export const MAY_EXEC = 1
export const MAY_WRITE = 2
export const MAY_READ = 4

export const S_ISUID = 0o4000
export const S_ISGID = 0o2000
export const S_ISVTX = 0o1000
const S_IXGRP = 0o010

interface Owned {
  kind: string
  perm: number
  uid: number
  gid: number
}

export const isRoot = (c: Caller): boolean => c.uid === 0
export const inGroup = (c: Caller, gid: number): boolean => isRoot(c) || c.gid === gid || c.groups.includes(gid)
/** inode_owner_or_capable */
export const owns = (c: Caller, n: Owned): boolean => isRoot(c) || c.uid === n.uid

/** generic_permission: root may do all but execute a non-dir with no x bit at all. */
export function permits(c: Caller, n: Owned, mask: number): boolean {
  if (isRoot(c)) return !(mask & MAY_EXEC) || n.kind === 'dir' || (n.perm & 0o111) !== 0
  const bits = c.uid === n.uid ? n.perm >> 6 : c.gid === n.gid || c.groups.includes(n.gid) ? n.perm >> 3 : n.perm
  return (bits & mask & 7) === (mask & 7)
}

/** check_sticky: in a sticky dir only the owner of the entry or of the dir removes or renames it. */
export const stickyRefuses = (c: Caller, dir: Owned, victim: Owned): boolean =>
  (dir.perm & S_ISVTX) !== 0 && !isRoot(c) && c.uid !== victim.uid && c.uid !== dir.uid

/** setattr_should_drop_sgid: setgid goes when group-executable, or when the caller is outside the group. */
const dropsSgid = (c: Caller, n: Owned): boolean => (n.perm & S_ISGID) !== 0 && ((n.perm & S_IXGRP) !== 0 || !inGroup(c, n.gid))

/** Permission bits after a write or truncate by `c` (file_remove_privs): none change for root. */
export function afterWrite(c: Caller, n: Owned): number {
  if (isRoot(c) || n.kind !== 'file') return n.perm
  let perm = n.perm & ~S_ISUID
  if (dropsSgid(c, n)) perm &= ~S_ISGID
  return perm
}

/** Permission bits after any chown of a non-dir (chown_common's ATTR_KILL_*), which needs ownership when it changes them. */
export function afterChown(c: Caller, n: Owned): number {
  if (n.kind === 'dir') return n.perm
  let perm = n.perm & ~S_ISUID
  if (dropsSgid(c, n)) perm &= ~S_ISGID
  return perm
}

/**
 * Mode of a new inode (vfs_prepare_mode and inode_init_owner): a setgid dir hands down its group,
 * and its setgid bit to subdirs; a new group-executable setgid file in it keeps setgid only for
 * members of that group.
 */
export function newOwnership(c: Caller, dir: Owned, kind: string, perm: number): { perm: number; uid: number; gid: number } {
  if (!(dir.perm & S_ISGID)) return { perm, uid: c.uid, gid: c.gid }
  let p = perm
  if (kind === 'dir') p |= S_ISGID
  else if ((p & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) && !inGroup(c, dir.gid)) p &= ~S_ISGID
  return { perm: p, uid: c.uid, gid: dir.gid }
}
