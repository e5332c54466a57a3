import { readFile } from 'node:fs/promises'
import type { Creds } from '../engine/index.js'

/**
 * The caller of a request as the engine checks it. FUSE sends the caller's fsuid, fsgid and pid
 * but not its supplementary groups, which the overlay's permission checks need as much as the
 * kernel's: they are read from /proc for callers other than root (root passes every check).
 */
export async function callerCreds(uid: number, gid: number, pid: number): Promise<Creds> {
  // the kernel walked the path as the caller before asking (default_permissions): a request
  // on an inode with several names must not fail on the walk of another name
  if (uid === 0 || pid === 0) return { uid, gid, groups: [], pathWalked: true }
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const line = /^Groups:(.*)$/m.exec(status)
    const groups = line ? line[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : []
    return { uid, gid, groups, pathWalked: true }
  } catch {
    // the caller may have exited already (a release after exit): its own ids still stand
    return { uid, gid, groups: [], pathWalked: true }
  }
}
