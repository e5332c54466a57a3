import { existsSync } from 'node:fs'
import type { RequestHeader } from '../kernel.js'
import type { FuseOps } from '../ops.js'
import { answer, sized, type Failure } from '../replies.js'
import type { GetxattrIn, ListxattrIn, RemovexattrIn, SetxattrIn } from '../requests.js'

/**
 * Without SELinux, a missing label reads as "not supported" rather than "no data". `ls -l` asks
 * for it on every file and, told ENOTSUP once, stops asking for the whole mount: the kernel
 * caches nothing of security xattrs, so each ask would be a round trip (20,000 for 20,000 files).
 */
const SELINUX_XATTR = 'security.selinux'
const SELINUX_ACTIVE = existsSync('/sys/fs/selinux/enforce')

/** Extended attributes of the node itself (never followed through a symlink). */
export class XattrHandlers {
  constructor(private readonly ops: FuseOps) {}

  /**
   * Through a file open on the node when there is one: the kernel asks for security.capability
   * before the first write to an open file and at each chown, and the open inode answers without
   * a walk of its path.
   */
  async getxattr(h: RequestHeader, r: GetxattrIn): Promise<Buffer | Failure> {
    const path = this.ops.pathOf(h.nodeid)
    const file = this.ops.openFiles.ofNode(h.nodeid)
    const fs = await this.ops.fsFor(h)
    const value = file ? await file.findxattr(r.name, fs.creds) : await fs.findxattr(path, r.name, { follow: false })
    if (value !== undefined) return sized(value, r.size)
    return answer(r.name === SELINUX_XATTR && !SELINUX_ACTIVE ? 'ENOTSUP' : 'ENODATA')
  }

  async listxattr(h: RequestHeader, r: ListxattrIn): Promise<Buffer> {
    const names = await (await this.ops.fsFor(h)).listxattr(this.ops.pathOf(h.nodeid), { follow: false })
    return sized(Buffer.from(names.map((n) => `${n}\0`).join('')), r.size)
  }

  async setxattr(h: RequestHeader, r: SetxattrIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).setxattr(this.ops.pathOf(h.nodeid), r.name, r.value, r.flags, { follow: false })
    await this.ops.changedThrough(h.nodeid)
    return undefined
  }

  async removexattr(h: RequestHeader, r: RemovexattrIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).removexattr(this.ops.pathOf(h.nodeid), r.name, { follow: false })
    await this.ops.changedThrough(h.nodeid)
    return undefined
  }
}
