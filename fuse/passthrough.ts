import { constants } from 'node:os'
import koffi from 'koffi'
import { libc } from './libc.js'
import { FsError, type ErrnoCode } from '../engine/index.js'

/**
 * FUSE passthrough (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH): a file opened with FOPEN_PASSTHROUGH is
 * read, written and mapped by the kernel straight from a host file the daemon registered on the
 * device, so read(2) never reaches the daemon. Registering takes an ioctl on /dev/fuse, which
 * Node cannot make (see libc.ts).
 * The kernel allows it only with CAP_SYS_ADMIN and never beside the writeback cache.
 */

/** _IOW(229, 1, struct fuse_backing_map): registers a host file, answers its backing id. */
const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501
/** _IOW(229, 2, uint32_t): drops a backing id (open files keep the host file they got). */
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502

const BackingMap = koffi.struct('fuse_backing_map', { fd: 'int32_t', flags: 'uint32_t', padding: 'uint64_t' })

/** The device's backing-file registry, as the kernel keeps it for one FUSE connection. */
export interface BackingDevice {
  /** Registers the host file open as `hostFd`; the kernel keeps its own reference to it. */
  open(hostFd: number): number
  close(backingId: number): void
}

const errnoError = (syscall: string, path: string): FsError => {
  const errno = libc().errno()
  const { EPERM, EINVAL, ELOOP } = constants.errno
  const code: ErrnoCode = ({ [EPERM]: 'EPERM', [EINVAL]: 'EINVAL', [ELOOP]: 'ELOOP' } as Record<number, ErrnoCode>)[errno] ?? 'EIO'
  return new FsError(code, syscall, path, `FUSE passthrough ioctl failed (errno ${errno})`)
}

/** The ioctls on the connection's /dev/fuse descriptor. */
export function deviceBacking(devFd: number, mountpoint: string): BackingDevice {
  return {
    open(hostFd) {
      const id = libc().ioctl(devFd, FUSE_DEV_IOC_BACKING_OPEN, koffi.pointer(BackingMap), { fd: hostFd, flags: 0, padding: 0 })
      if (id <= 0) throw errnoError('ioctl', mountpoint)
      return id
    },
    close(backingId) {
      libc().ioctl(devFd, FUSE_DEV_IOC_BACKING_CLOSE, 'uint32_t *', [backingId])
    },
  }
}

/**
 * The backing ids of the nodes open in passthrough. The kernel lets an inode read through one
 * host file at a time, so every open of a node shares one id, registered at its first open and
 * dropped after its last release (not at once: the kernel looks the id up only after the OPEN
 * reply is written, in the opener's own time).
 */
export class PassthroughFiles {
  private readonly byNode = new Map<number, { id: number; opens: number }>()
  private readonly nodeOfFh = new Map<number, number>()
  /** Set once registering failed (no CAP_SYS_ADMIN, an old kernel): opens go through the daemon. */
  private refused = false

  constructor(private readonly device: BackingDevice, private readonly onRefused: (err: Error) => void) {}

  /** The backing id the OPEN reply for `fh` carries, or undefined to serve the open as usual. */
  attach(fh: number, nodeid: number, hostFd: number): number | undefined {
    let known = this.byNode.get(nodeid)
    if (!known) {
      if (this.refused) return undefined
      try {
        known = { id: this.device.open(hostFd), opens: 0 }
      } catch (err) {
        this.refused = true
        this.onRefused(err as Error)
        return undefined
      }
      this.byNode.set(nodeid, known)
    }
    known.opens++
    this.nodeOfFh.set(fh, nodeid)
    return known.id
  }

  /** `fh` released: its node's backing id goes with the node's last passthrough open. */
  release(fh: number): void {
    const nodeid = this.nodeOfFh.get(fh)
    if (nodeid === undefined) return
    this.nodeOfFh.delete(fh)
    const known = this.byNode.get(nodeid)!
    if (--known.opens > 0) return
    this.byNode.delete(nodeid)
    this.device.close(known.id)
  }
}
