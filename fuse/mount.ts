import { stat, writeFile } from 'node:fs/promises'
import type { SnapshotFs } from '../engine/index.js'
import { FuseChannel, unmountPath } from './channel.js'
import { FuseOps } from './ops.js'
import { MAX_WRITE } from './handlers/session.js'

/** How long the kernel may keep what it learned, and whether it may keep file data between opens. */
export interface CachePolicy {
  /** Seconds a looked-up name (or a missing one) stays valid in the kernel's dentry cache. */
  entryTimeout: number
  /** Seconds attributes stay valid in the kernel's inode cache. */
  attrTimeout: number
  /** Keep the page cache of a file across opens (FOPEN_KEEP_CACHE). */
  keepCache: boolean
  /** Let the kernel cache directory listings (FOPEN_CACHE_DIR). */
  cacheDir: boolean
  /**
   * Written data stays in the kernel's page cache and reaches the daemon in large pieces, at
   * close, fsync or writeback (FUSE_WRITEBACK_CACHE): one WRITE per small file instead of one per
   * write(2). Only where every change passes through the mount, since the kernel then holds the
   * file's size and times as the truth.
   */
  writeback: boolean
}

export interface MountOptions {
  /** Absolute path of an existing directory. */
  mountpoint: string
  /** The merged tree served; each request runs as `fs.withCreds(caller)`. */
  fs: SnapshotFs
  /** Mount read-only (the kernel refuses writes with EROFS before they reach Strata). */
  readOnly: boolean
  /**
   * Nothing below changes except through this mount (committed snapshots, views, directory
   * layers, an upper only this mount writes): the kernel may cache names, attributes and data.
   */
  cache: CachePolicy
  /** The source column of /proc/mounts. */
  fsname: string
  /** A host path whose filesystem answers statfs (the store or the upper dir). */
  statfsPath: string
  /** Mount flags for the kernel's VFS (nosuid, nodev, noexec, noatime…). */
  vfs?: string[]
  /**
   * Let the kernel read files that live in host files (directory layers) straight from them
   * (FUSE passthrough), where the kernel and the daemon's privileges allow it. The kernel never
   * combines it with the writeback cache, so a `cache.writeback` mount goes without.
   */
  passthrough?: boolean
}

/** One FUSE mount served by this process. */
export interface FuseMount {
  readonly mountpoint: string
  /** Settles as soon as the kernel ends the session: `umount` from anywhere, or an abort. */
  readonly ended: Promise<void>
  /** Settles once the session has ended and the files it left open are closed. */
  readonly closed: Promise<void>
  /** Unmounts (lazily if `lazy`) and waits until the session has ended and open files are flushed. */
  unmount(opts?: { lazy?: boolean }): Promise<void>
}

/**
 * A tree that never changes (committed snapshot, view, read-only directory layers): the kernel
 * keeps names, attributes, listings and file data as long as it likes.
 */
export const IMMUTABLE_CACHE: CachePolicy = Object.freeze({ entryTimeout: 86400, attrTimeout: 86400, keepCache: true, cacheDir: true, writeback: false })

/**
 * A writable tree. Every change passes through the mount and the kernel updates or drops its
 * caches on the operations it sends (a write updates the page cache), and where one change
 * shows under several kernel inodes (the names of a hard link under a directory upper), Strata
 * tells the kernel to drop the others (see FuseOps.changed). Timeouts stay short and listings
 * are read anew all the same: the differential test found sequences (a lower hard link split by
 * copy-up under a directory upper) where a minute of cached attributes showed a stale size.
 */
export const WRITABLE_CACHE: CachePolicy = Object.freeze({ entryTimeout: 1, attrTimeout: 1, keepCache: true, cacheDir: false, writeback: true })

/**
 * A writable store snapshot: its changes all pass through this mount (the store refuses a
 * second read-write mount and a commit while it is mounted), and an inode keeps one FUSE node
 * through copy-up, so names and attributes the kernel holds stay true. Kept a minute rather
 * than for ever: a program changing the same active snapshot through the engine's API meanwhile
 * (like changing a kernel overlay's upper directory under it, which the kernel leaves
 * undefined) is seen within that time. Listings are read anew on every opendir.
 */
export const STORE_WRITABLE_CACHE: CachePolicy = Object.freeze({ entryTimeout: 60, attrTimeout: 60, keepCache: true, cacheDir: false, writeback: true })

class Session implements FuseMount {
  readonly closed: Promise<void>
  readonly ended: Promise<void>

  constructor(private readonly channel: FuseChannel, ops: FuseOps) {
    this.ended = channel.ended
    // the session is over once the device says so; what the kernel left open is closed then
    this.closed = channel.ended.then(() => ops.closeAll())
  }

  get mountpoint(): string {
    return this.channel.mountpoint
  }

  async unmount(opts: { lazy?: boolean } = {}): Promise<void> {
    await unmountPath(this.mountpoint, opts.lazy === true)
    await this.closed
  }
}

/** Mounts `opts.fs` at `opts.mountpoint`; resolves once the kernel has completed the handshake. */
export async function mountFuse(opts: MountOptions): Promise<FuseMount> {
  const channel = await FuseChannel.open({ mountpoint: opts.mountpoint, fsname: opts.fsname, readOnly: opts.readOnly, vfs: opts.vfs ?? [], maxWrite: MAX_WRITE })
  let initialised!: () => void
  const ready = new Promise<void>((r) => { initialised = r })
  const nodeidPerName = !(await opts.fs.hardLinksSurviveCopyUp())
  const backing = opts.passthrough === true && !opts.cache.writeback ? channel.backingDevice() : undefined
  const ops = new FuseOps(opts.fs, { cache: opts.cache, statfsPath: opts.statfsPath, nodeidPerName, backing }, {
    send: (msg) => {
      channel.send(msg)
      initialised()
    },
    sendOnPool: (parts) => channel.sendOnPool(parts),
  })
  channel.start((buf, n, recycle) => ops.handle(buf, n, recycle))
  await Promise.race([ready, channel.ended])
  await widenReadahead(opts.mountpoint)
  return new Session(channel, ops)
}

/**
 * Read-ahead of a mount: 8 MiB keeps eight 1 MiB READs in flight, which the engine answers from
 * chunks it reads ahead on the pool; measured on a cold 1 GiB read of a store snapshot with pack
 * files already in the page cache (the daemon's own ceiling), about 1.1–1.3 GB/s at 1 MiB and
 * 1.3–1.4 GB/s at 8 MiB. The kernel starts FUSE mounts at 128 KiB.
 */
const READAHEAD_KB = 8192

/**
 * The kernel caps a FUSE mount's read-ahead at the block layer's default, whatever INIT asked
 * for; its backing-device entry in sysfs is the place to raise it. Failing that (no sysfs, not
 * root) the mount still works, with smaller reads.
 */
async function widenReadahead(mountpoint: string): Promise<void> {
  try {
    const dev = (await stat(mountpoint)).dev
    const major = Math.floor(dev / 256) & 0xfff
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00)
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(READAHEAD_KB))
  } catch {
    // keep the kernel's default
  }
}
