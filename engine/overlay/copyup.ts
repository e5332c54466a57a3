import type { InodeRecord } from '../store/records.js'
import { fsError } from '../errors.js'
import { isDirType, type OvlNode, type UpperWriter } from './node.js'
import { nodeInode } from './namei.js'
import { isOverlayPrivateXattr } from './whiteout.js'
import type { Overlay } from './overlay.js'

/**
 * The upper copy of a lower inode. A metadata write: a regular file's new record points at the
 * lower file's chunks, so no data moves; a dir starts empty and keeps merging with its lower dir.
 */
export function copyUpRecord(rec: InodeRecord, keepXattr?: (name: string) => boolean): InodeRecord {
  const up: InodeRecord = { ...rec }
  if (rec.xattrs) {
    // only trusted.overlay.* stays behind (as the kernel without userxattr): user.overlay.* is data
    const kept = Object.entries(rec.xattrs).filter(([k]) => !isOverlayPrivateXattr(k) && (keepXattr?.(k) ?? true))
    up.xattrs = kept.length > 0 ? Object.fromEntries(kept) : undefined
  }
  if (isDirType((rec.mode & 0o170000) >> 12)) {
    delete up.opaque
    delete up.redirect
  }
  delete up.origin
  return up
}

/**
 * Whether a copy-up gives the object a new inode, apart from its other names: a hard link under
 * an upper that breaks them (a directory upper, as the kernel without an index).
 */
export const copyUpBreaksLink = (upper: UpperWriter, type: number, rec: InodeRecord): boolean =>
  !isDirType(type) && !upper.keepsHardLinks && rec.nlink > 1

/**
 * Copies a node (and first its parents) up into the upper layer, each step one atomic batch, as
 * the kernel copies up through its work dir. Afterwards `node.upper` is set.
 */
export async function copyUp(ov: Overlay, node: OvlNode, syscall: string): Promise<void> {
  if (node.upper) return
  const upper = ov.writable(syscall, node.path)
  if (!node.parent) throw fsError('EIO', syscall, node.path, 'root of an active snapshot is always upper')
  await copyUp(ov, node.parent, syscall)
  const live = ov.live.get(node.ino)
  const rec = live ? await live.current() : await nodeInode(ov.ctx, node)
  const ino = copyUpBreaksLink(upper, node.type, rec) ? await ov.env.allocIno() : node.ino
  // A hard link whose inode went up through another name: only the name is missing.
  const already = isDirType(node.type) ? undefined : await upper.inode(ino)
  const txn = ov.txn()
  if (!already) {
    const up = copyUpRecord(rec, ov.env.copyUpXattr)
    if (node.lower?.layer !== undefined) up.copiedFrom = node.lower.layer
    upper.putInode(txn, ino, await upper.adoptRecord(txn, up))
  }
  upper.putEntry(txn, node.parent.ino, node.name, [ino, node.type])
  await txn.commit()
  if (ino !== node.ino) {
    // The copy is a new inode (a directory layer breaks hard links, as the kernel without index):
    // files open through any name of the lower inode stay on it.
    node.ino = ino
  } else if (live && !live.inUpper) {
    // An open copy of the inode (opened below, or the inode went up through another name) must
    // flush to the upper record from now on, or later writes would be lost.
    await live.movedUp((await upper.inode(ino))!)
  }
  node.upper = true
  // other overlays of the snapshot may hold their own node of this dir, which still says lower
  if (isDirType(node.type)) ov.namesChanged()
}
