import { readlinkSync } from 'node:fs'
import type { RedirectPolicy } from '../engine/index.js'

/** A snapshot of the store mounted whole: read-only, or an active snapshot with `rw`. */
export interface SnapshotMountRequest {
  kind: 'snapshot'
  /** Absolute store path. */
  store: string
  key: string
  rw: boolean
  /** Absolute mountpoint, as path.resolve gives it. */
  mountpoint: string
  fsname?: string
}

/**
 * Directories in the kernel's overlay format, optionally over a committed store snapshot
 * (`snapshot`, in `store`). Paths are absolute.
 */
export interface DirsMountRequest {
  kind: 'dirs'
  lowerdir: string[]
  upperdir?: string
  workdir?: string
  redirectDir?: RedirectPolicy
  userxattr: boolean
  /** `ro` was given: read-only even with an upper dir. */
  readOnly: boolean
  snapshot?: string
  store?: string
  mountpoint: string
  fsname?: string
}

/**
 * What the requester's mount namespace is (`/proc/self/ns/mnt`): a daemon already serving the
 * store may run in another one, where a mount would not be seen by the requester.
 */
export type MountRequest = (SnapshotMountRequest | DirsMountRequest) & {
  namespace?: string
  /** Mount flags for the kernel's VFS (nosuid, nodev, noexec, noatime…), in the order given. */
  vfs?: string[]
}

/** This process's mount namespace, as the kernel names it ('mnt:[4026531841]'); undefined where unknown. */
export function mountNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/mnt')
  } catch {
    return undefined
  }
}

/** The store a mount needs open, if any: a directory stack without `snapshot=` needs none. */
export function requestStore(req: MountRequest): string | undefined {
  return req.kind === 'snapshot' ? req.store : req.snapshot !== undefined ? req.store : undefined
}

/** Whether the mount takes writes. */
export function requestWritable(req: MountRequest): boolean {
  return req.kind === 'snapshot' ? req.rw : !req.readOnly && req.upperdir !== undefined
}

/** What is mounted, in a line: the source column of `strata mounts`. */
export function describeSource(req: MountRequest): string {
  if (req.kind === 'snapshot') return req.key
  const parts: string[] = []
  if (req.snapshot !== undefined) parts.push(`snapshot=${req.snapshot}`)
  if (req.lowerdir.length > 0) parts.push(`lowerdir=${req.lowerdir.join(':')}`)
  if (req.upperdir !== undefined) parts.push(`upperdir=${req.upperdir}`)
  return parts.join(',')
}

/** What the daemon is started with, over its IPC channel. */
export interface DaemonConfig {
  /** A store daemon serves every mount of that store; without one, the daemon serves this one mount. */
  store?: string
  request: MountRequest
}

/** The daemon's first answer over IPC: the mount's record, or why it failed. */
export type DaemonReport = { ready: true; record: unknown } | { ready: false; error: string; code?: string }
