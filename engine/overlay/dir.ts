import type { InodeRecord } from '../store/records.js'
import { WHITEOUT, nowTimespec } from '../store/records.js'
import type { Creds } from '../types.js'
import { fsError, isCode } from '../errors.js'
import { T, isDirType, joinPath, typeOf, type OvlNode, type UpperTxn } from './node.js'
import { lookupChild, lowerPositive } from './namei.js'
import { MAY_READ, MAY_WRITE, checkAccess, checkSticky, permits } from './permission.js'
import { copyUp, copyUpRecord } from './copyup.js'
import { isEmptyDir } from './readdir.js'
import { createsRedirects, makeRedirect } from './redirect.js'
import { checkDirWrite, newInodeRecord, touchDir, writeInode } from './update.js'
import type { Overlay } from './overlay.js'

/**
 * Operations on names (the kernel's fs/overlayfs/dir.c): create, link, unlink, rmdir, rename.
 * Each takes the store's lock, copies up what it touches, and writes its change as one batch.
 */

export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2

/** Creates a new inode named `path`; the type and content come from `mode` and `extra`. */
export async function createNode(ov: Overlay, creds: Creds, path: string, mode: number, syscall: string, extra: Partial<InodeRecord> = {}): Promise<OvlNode> {
  return ov.env.lock.run(async () => {
    const { dir, name, slash } = await ov.resolveParent(path, creds, syscall)
    const upper = ov.writable(syscall, path)
    const found = await lookupChild(ov.ctx, dir, name)
    if (found.node) throw fsError('EEXIST', syscall, path)
    // a new name with a trailing slash can only be a dir (filename_create)
    if (slash && syscall !== 'mkdir') throw fsError('ENOENT', syscall, path)
    const dirRec = await ov.inodeOf(dir)
    checkDirWrite(creds, dirRec, syscall, path)
    await copyUp(ov, dir, syscall)
    const ino = await ov.env.allocIno()
    const rec = newInodeRecord(creds, dirRec, mode, extra)
    const type = typeOf(mode)
    // A dir made where a whiteout was hides whatever lower dir the whiteout hid.
    if (isDirType(type) && found.whiteout) rec.opaque = true
    const txn = ov.txn()
    upper.putInode(txn, ino, rec, true)
    upper.putEntry(txn, dir.ino, name, [ino, type])
    touchDir(ov, txn, dir, await ov.inodeOf(dir), isDirType(type) ? 1 : 0)
    await txn.commit()
    return { name, path: dir.path === '/' ? `/${name}` : `${dir.path}/${name}`, parent: dir, ino, type, upper: true, opaque: rec.opaque === true }
  })
}

export async function link(ov: Overlay, creds: Creds, existing: string, newPath: string): Promise<void> {
  return ov.env.lock.run(async () => {
    const src = await ov.resolve(existing, creds, 'link', false)
    const { dir, name, slash } = await ov.resolveParent(newPath, creds, 'link')
    const upper = ov.writable('link', newPath)
    if ((await lookupChild(ov.ctx, dir, name)).node) throw fsError('EEXIST', 'link', newPath)
    if (slash) throw fsError('ENOENT', 'link', newPath)
    const srcRec = await ov.inodeOf(src)
    // protected_hardlinks: others may link only a regular file they can read and write that is
    // neither setuid nor executable setgid (the kernel's safe_hardlink_source)
    const safeSource = typeOf(srcRec.mode) === T.REG && !(srcRec.mode & 0o4000) && (srcRec.mode & 0o2010) !== 0o2010 && permits(creds, srcRec, MAY_READ | MAY_WRITE)
    if (creds.uid !== 0 && creds.uid !== srcRec.uid && !safeSource) throw fsError('EPERM', 'link', existing)
    checkDirWrite(creds, await ov.inodeOf(dir), 'link', newPath)
    // last, as linkat(2) answers: new name, may_linkat, may_create, then the dir refusal
    if (isDirType(src.type)) throw fsError('EPERM', 'link', existing)
    await copyUp(ov, src, 'link')
    await copyUp(ov, dir, 'link')
    const rec = await ov.inodeOf(src)
    const txn = ov.txn()
    writeInode(ov, txn, src.ino, { ...rec, nlink: rec.nlink + 1, ctime: nowTimespec() })
    upper.putEntry(txn, dir.ino, name, [src.ino, src.type])
    touchDir(ov, txn, dir, await ov.inodeOf(dir))
    await txn.commit()
  })
}

/** Removes `node`'s name: drops the upper entry, and leaves a whiteout where a lower object is. */
async function removeName(ov: Overlay, node: OvlNode, txn: UpperTxn): Promise<void> {
  const upper = ov.upper!
  const parent = node.parent!
  if (await lowerPositive(ov.ctx, node)) upper.putEntry(txn, parent.ino, node.name, WHITEOUT)
  else upper.delEntry(txn, parent.ino, node.name)
}

async function checkRemove(ov: Overlay, creds: Creds, dir: OvlNode, node: OvlNode, syscall: string, path: string): Promise<void> {
  const dirRec = await ov.inodeOf(dir)
  checkDirWrite(creds, dirRec, syscall, path)
  checkSticky(creds, dirRec, await ov.inodeOf(node), syscall, path)
}

/** Drops one link of a non-dir inode; the record goes with the last one unless the file is open. */
async function dropLink(ov: Overlay, node: OvlNode, txn: UpperTxn): Promise<void> {
  const rec = await ov.inodeOf(node)
  const upper = ov.upper!
  const nlink = rec.nlink - 1
  if (nlink > 0) {
    // A lower inode's first upper record is its copy-up, even when it comes from an unlink, so
    // that usage and gc know which of its chunks the upper layer did not add.
    const copied = node.upper || (await upper.inode(node.ino)) !== undefined
    const base = copied ? rec : await upper.adoptRecord(txn, { ...copyUpRecord(rec, ov.env.copyUpXattr), copiedFrom: node.lower?.layer })
    writeInode(ov, txn, node.ino, { ...base, nlink, ctime: nowTimespec() })
  } else {
    if (node.upper || (await upper.inode(node.ino))) upper.delInode(txn, node.ino)
    // open handles see the last link go, whether or not the inode was ever copied up
    ov.live.get(node.ino)?.unlinked()
  }
}

export async function unlink(ov: Overlay, creds: Creds, path: string): Promise<void> {
  return ov.env.lock.run(async () => {
    const { dir, name, slash } = await ov.resolveParent(path, creds, 'unlink')
    ov.writable('unlink', path)
    const node = (await lookupChild(ov.ctx, dir, name)).node
    if (!node) throw fsError('ENOENT', 'unlink', path)
    // do_unlinkat refuses 'name/' before any permission check
    if (slash) throw fsError(isDirType(node.type) ? 'EISDIR' : 'ENOTDIR', 'unlink', path)
    // may_delete checks permission and the sticky rule before the type
    await checkRemove(ov, creds, dir, node, 'unlink', path)
    if (isDirType(node.type)) throw fsError('EISDIR', 'unlink', path)
    await copyUp(ov, dir, 'unlink')
    const txn = ov.txn()
    await dropLink(ov, node, txn)
    await removeName(ov, node, txn)
    touchDir(ov, txn, dir, await ov.inodeOf(dir))
    await txn.commit()
  })
}

/** Deletes the upper records of an (empty in the merged view) dir: its whiteouts and its inode. */
async function dropUpperDir(ov: Overlay, node: OvlNode, txn: UpperTxn): Promise<void> {
  if (!node.upper) return
  const upper = ov.upper!
  for (const [name] of await upper.entries(node.ino)) upper.delEntry(txn, node.ino, name)
  upper.delInode(txn, node.ino)
}

export async function rmdir(ov: Overlay, creds: Creds, path: string): Promise<void> {
  return ov.env.lock.run(async () => {
    const { dir, name } = await ov.resolveParent(path, creds, 'rmdir')
    ov.writable('rmdir', path)
    const node = (await lookupChild(ov.ctx, dir, name)).node
    if (!node) throw fsError('ENOENT', 'rmdir', path)
    await checkRemove(ov, creds, dir, node, 'rmdir', path)
    if (!isDirType(node.type)) throw fsError('ENOTDIR', 'rmdir', path)
    if (!(await isEmptyDir(ov, node))) throw fsError('ENOTEMPTY', 'rmdir', path)
    await copyUp(ov, dir, 'rmdir')
    const txn = ov.txn()
    await dropUpperDir(ov, node, txn)
    await removeName(ov, node, txn)
    touchDir(ov, txn, dir, await ov.inodeOf(dir), -1)
    await txn.commit()
    ov.namesChanged()
  })
}

const isInside = (path: string, dir: string): boolean => dir === '/' || path === dir || path.startsWith(dir + '/')

/**
 * rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE. A dir that has a lower part moves by a
 * redirect to where that part is (EXDEV when redirects are not created, as the kernel); a pure
 * upper dir moved into a merged dir turns opaque so the new place's lower dir stays hidden.
 */
export async function rename(ov: Overlay, creds: Creds, from: string, to: string, flags = 0): Promise<void> {
  return ov.env.lock.run(async () => {
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
      throw fsError('EINVAL', 'rename', from, 'invalid flags', )
    }
    const exchange = (flags & RENAME_EXCHANGE) !== 0
    const src = await ov.resolveParent(from, creds, 'rename')
    const dst = await ov.resolveParent(to, creds, 'rename').catch((err: unknown) => {
      // onto the root itself: EBUSY, except that NOREPLACE answers that the target exists
      throw isCode(err, 'EBUSY') && flags & RENAME_NOREPLACE ? fsError('EEXIST', 'rename', to) : err
    })
    const upper = ov.writable('rename', from)
    const s = (await lookupChild(ov.ctx, src.dir, src.name)).node
    if (!s) throw fsError('ENOENT', 'rename', from)
    const d = (await lookupChild(ov.ctx, dst.dir, dst.name)).node
    if (flags & RENAME_NOREPLACE && d) throw fsError('EEXIST', 'rename', to)
    if (exchange && !d) throw fsError('ENOENT', 'rename', to)
    // only a dir may be named with a trailing slash (the target's counts only in an exchange)
    if (exchange && !isDirType(d!.type) && dst.slash) throw fsError('ENOTDIR', 'rename', to)
    if (!isDirType(s.type) && (src.slash || (!exchange && dst.slash))) throw fsError('ENOTDIR', 'rename', src.slash ? from : to)
    // As lock_rename's trap: a dir may not move below itself, nor a target be an ancestor of the
    // source (ENOTEMPTY, or EINVAL for an exchange); a rename onto the same name is no error.
    const dstPath = joinPath(dst.dir.path, dst.name)
    if (isDirType(s.type) && dstPath !== s.path && isInside(dstPath, s.path)) throw fsError('EINVAL', 'rename', from)
    if (d && isDirType(d.type) && d.path !== s.path && isInside(s.path, d.path)) throw fsError(exchange ? 'EINVAL' : 'ENOTEMPTY', 'rename', to)
    // In vfs_rename's order: one inode under both names needs nothing (no permission either);
    // then removing the source, creating or replacing the target (with its type checks), the
    // '..' rule, and last the target dir's emptiness.
    if (d && d.ino === s.ino && !isDirType(s.type) && (upper.keepsHardLinks || s.upper)) return
    if (d && s.path === d.path) return
    await checkRemove(ov, creds, src.dir, s, 'rename', from)
    if (!d) checkDirWrite(creds, await ov.inodeOf(dst.dir), 'rename', to)
    else {
      await checkRemove(ov, creds, dst.dir, d, 'rename', to)
      if (!exchange && isDirType(s.type) && !isDirType(d.type)) throw fsError('ENOTDIR', 'rename', to)
      if (!exchange && !isDirType(s.type) && isDirType(d.type)) throw fsError('EISDIR', 'rename', to)
    }
    if (src.dir.ino !== dst.dir.ino) {
      // a dir that changes parent has its '..' rewritten: that needs write access to the dir itself
      if (isDirType(s.type)) checkAccess(creds, await ov.inodeOf(s), MAY_WRITE, 'rename', from)
      if (exchange && d && isDirType(d.type)) checkAccess(creds, await ov.inodeOf(d), MAY_WRITE, 'rename', to)
    }
    if (d && !exchange && isDirType(d.type) && !(await isEmptyDir(ov, d))) throw fsError('ENOTEMPTY', 'rename', to)
    // Work out the redirect before changing anything, so a refusal changes nothing.
    const redirectFor = (n: OvlNode, newParent: OvlNode): string | undefined | null => {
      if (!isDirType(n.type) || !n.lower) return null
      if (!createsRedirects(ov.ctx.redirect) || n.lowerPath === undefined) throw fsError('EXDEV', 'rename', from, undefined)
      const r = makeRedirect(n.lowerPath, newParent.opaque ? undefined : newParent.lowerPath, ov.ctx.redirect)
      if (r === undefined) throw fsError('EXDEV', 'rename', from, 'redirect longer than redirect_max')
      return r
    }
    const sRedirect = redirectFor(s, dst.dir)
    const dRedirect = exchange && d ? redirectFor(d, src.dir) : null
    const srcLowerPositive = await lowerPositive(ov.ctx, s)

    await copyUp(ov, src.dir, 'rename')
    await copyUp(ov, dst.dir, 'rename')
    // the parents may have changed from lower to upper: look the names up again
    await copyUp(ov, s, 'rename')
    if (exchange && d) await copyUp(ov, d, 'rename')

    const txn = ov.txn()
    const fixDir = async (n: OvlNode, redirect: string | undefined | null, newParent: OvlNode): Promise<void> => {
      if (!isDirType(n.type)) return
      const rec = await ov.inodeOf(n)
      let next: InodeRecord | undefined
      if (redirect !== null && redirect !== undefined) next = { ...rec, redirect }
      else if (!n.lower && !n.opaque && newParent.lower && !newParent.opaque) next = { ...rec, opaque: true }
      if (next) writeInode(ov, txn, n.ino, { ...next, ctime: nowTimespec() })
    }
    await fixDir(s, sRedirect, dst.dir)
    if (exchange && d) {
      await fixDir(d, dRedirect, src.dir)
      upper.putEntry(txn, dst.dir.ino, dst.name, [s.ino, s.type])
      upper.putEntry(txn, src.dir.ino, src.name, [d.ino, d.type])
    } else {
      if (d) {
        if (isDirType(d.type)) await dropUpperDir(ov, d, txn)
        else await dropLink(ov, d, txn)
      }
      upper.putEntry(txn, dst.dir.ino, dst.name, [s.ino, s.type])
      if (srcLowerPositive) upper.putEntry(txn, src.dir.ino, src.name, WHITEOUT)
      else upper.delEntry(txn, src.dir.ino, src.name)
    }
    // Each parent's link count follows the subdirs it loses and gains (an exchange of a dir with a
    // non-dir moves a subdir from one parent to the other).
    const dirs = (n: OvlNode | undefined): number => (n && isDirType(n.type) ? 1 : 0)
    const srcDelta = exchange ? dirs(d) - dirs(s) : -dirs(s)
    const dstDelta = dirs(s) - dirs(d)
    if (src.dir.ino === dst.dir.ino) {
      touchDir(ov, txn, src.dir, await ov.inodeOf(src.dir), srcDelta + dstDelta)
    } else {
      touchDir(ov, txn, src.dir, await ov.inodeOf(src.dir), srcDelta)
      touchDir(ov, txn, dst.dir, await ov.inodeOf(dst.dir), dstDelta)
    }
    if (!isDirType(s.type)) {
      const rec = await ov.inodeOf(s)
      writeInode(ov, txn, s.ino, { ...rec, ctime: nowTimespec() })
    }
    await txn.commit()
    if (isDirType(s.type) || (d && isDirType(d.type))) ov.namesChanged()
  })
}

export const typeFromMode = (mode: number): number => typeOf(mode)
export { T }
