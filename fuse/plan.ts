import { closeSync, constants, openSync } from 'node:fs'
import { openDirStack, type SnapshotFs, type Store } from '../engine/index.js'
import { fsError } from '../engine/errors.js'
import { IMMUTABLE_CACHE, STORE_WRITABLE_CACHE, WRITABLE_CACHE, type CachePolicy } from './mount.js'
import type { DirsMountRequest, MountRequest, SnapshotMountRequest } from './request.js'

/** Everything `mountFuse` needs for a request, plus the hold to let go of when the mount ends. */
export interface MountPlan {
  fs: SnapshotFs
  readOnly: boolean
  cache: CachePolicy
  /** The kernel may read host files itself (MountOptions.passthrough): read-only directory layers. */
  passthrough: boolean
  statfsPath: string
  fsname: string
  /** Ends the store hold that keeps the mounted snapshot from being committed or removed under the mount (and unpins). */
  release: () => void
  /**
   * Lets go of the host dirs the mount holds open, the moment the kernel ends the session: a
   * umount of a lower dir's file system right after the overlay's must not find them busy.
   */
  unpin?: () => void
}

/**
 * Opens the tree a request mounts, so that a bad snapshot name, a snapshot of the wrong kind or
 * bad layer dirs fail here, before anything is mounted.
 */
export async function planMount(req: MountRequest, store: Store | undefined): Promise<MountPlan> {
  return req.kind === 'snapshot' ? planSnapshot(req, needStore(store, req.mountpoint)) : planDirs(req, store)
}

function needStore(store: Store | undefined, mountpoint: string): Store {
  if (!store) throw fsError('EINVAL', 'mount', mountpoint, 'this daemon holds no store')
  return store
}

const umountHint = (mnt: string): string => `run 'strata umount ${mnt}' first`

async function planSnapshot(req: SnapshotMountRequest, store: Store): Promise<MountPlan> {
  const { key, mountpoint: mnt } = req
  const info = await store.stat(key)
  if (req.rw && info.kind !== 'active') {
    const hint = info.kind === 'committed' ? `; make an active snapshot on it ('strata prepare KEY ${key}') and mount that` : ''
    throw fsError('EINVAL', 'mount', key, `'${key}' is ${info.kind === 'view' ? 'a view' : 'committed'}: --rw mounts an active snapshot${hint}`)
  }
  if (!req.rw && info.kind === 'active') throw fsError('EINVAL', 'mount', key, `'${key}' is active: mount it with --rw, or commit it and mount the committed snapshot`)
  const release = req.rw
    ? store.hold(key, `is mounted read-write at ${mnt}; ${umountHint(mnt)}`)
    : store.hold(key, `is mounted at ${mnt}; ${umountHint(mnt)}`, { shared: true })
  try {
    const fs = store.fs(key)
    await fs.stat('/')
    return { fs, readOnly: !req.rw, cache: req.rw ? STORE_WRITABLE_CACHE : IMMUTABLE_CACHE, passthrough: false, statfsPath: store.path, fsname: req.fsname ?? `strata:${key}`, release }
  } catch (err) {
    release()
    throw err
  }
}

async function planDirs(req: DirsMountRequest, store: Store | undefined): Promise<MountPlan> {
  const letGo = holdLowerDirs(req.lowerdir)
  try {
    const plan = await planDirStack(req, store)
    return { ...plan, unpin: letGo, release: () => { letGo(); plan.release() } }
  } catch (err) {
    letGo()
    throw err
  }
}

async function planDirStack(req: DirsMountRequest, store: Store | undefined): Promise<MountPlan> {
  const layers = { lowerdir: req.lowerdir, upperdir: req.upperdir, workdir: req.workdir, redirectDir: req.redirectDir, userxattr: req.userxattr }
  const readOnly = req.readOnly || req.upperdir === undefined
  const cache = readOnly ? IMMUTABLE_CACHE : WRITABLE_CACHE
  const fsname = req.fsname ?? 'strata'
  if (req.snapshot === undefined) {
    const fs = await openDirStack(layers)
    return { fs, readOnly, cache, passthrough: readOnly, statfsPath: req.upperdir ?? req.lowerdir[0], fsname, release: () => {} }
  }
  const base = needStore(store, req.mountpoint)
  const release = base.hold(req.snapshot, `is the bottom layer of the mount at ${req.mountpoint}; ${umountHint(req.mountpoint)}`, { shared: true })
  try {
    const fs = base.stackFs({ ...layers, base: req.snapshot })
    await fs.stat('/')
    return { fs, readOnly, cache, passthrough: readOnly, statfsPath: req.upperdir ?? base.path, fsname, release }
  } catch (err) {
    release()
    throw err
  }
}

/** Lower dirs held open by one mount at most; a longer stack holds its top ones. */
const MAX_HELD_DIRS = 512
/**
 * Stacks of fewer lower dirs hold none. A held dir keeps its file system busy until the daemon
 * has seen the session end, a moment after umount(8) returns: a umount of a lower's file system
 * right after the overlay's (as the unionmount-testsuite does after each test) then fails with
 * EBUSY now and then, where the kernel's overlay lets go within its umount. What holding saves
 * grows with the number of layers a cold lookup walks, so only deep stacks pay that price.
 */
const HOLD_FROM_DIRS = 16

/**
 * Holds the lower dirs open while mounted, as the kernel's overlay holds its layers: the host
 * keeps the inodes of open dirs, and of the dirs above them, when its caches are dropped or
 * pressed, so a cold lookup reads each layer's dirs and not also the way to them. Lookups still
 * go by path (Node has no fstatat); a dir that cannot be opened is just not held. Returns what
 * lets them go.
 */
function holdLowerDirs(dirs: string[]): () => void {
  const fds: number[] = []
  for (const dir of dirs.length < HOLD_FROM_DIRS ? [] : dirs.slice(0, MAX_HELD_DIRS)) {
    try {
      fds.push(openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY))
    } catch {
      break // out of descriptors, or a bad dir that opening the stack reports
    }
  }
  return () => {
    for (const fd of fds.splice(0)) closeSync(fd)
  }
}
