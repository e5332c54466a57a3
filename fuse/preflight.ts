import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { fsError } from '../engine/errors.js'
import { CliError } from '../engine/cli/errors.js'
import { FSTYPE, mountAt, processAlive, readRecord } from './registry.js'

const DIED = 'a Strata mount whose daemon died is still there'

/** Refuses early, in words, what mount(8) would refuse obscurely: no root, no FUSE device. */
export function checkCanMount(): void {
  if (process.getuid?.() !== 0) throw new CliError('mounting needs root: Strata mounts FUSE with mount(8), which only root may do for fuse.strata (run it with sudo)')
  if (!existsSync('/dev/fuse')) throw new CliError('no /dev/fuse: load the FUSE kernel module (modprobe fuse), or in a container pass the device through')
}

/**
 * The mountpoint must be a directory without a Strata mount already on it. Asynchronous: in a
 * daemon, the mountpoint may lie inside one of its own mounts, whose requests need its event loop.
 */
export async function checkMountpoint(mountpoint: string): Promise<void> {
  let st
  try {
    st = await stat(mountpoint)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw fsError('ENOENT', 'mount', mountpoint, 'mountpoint does not exist')
    // a FUSE mount whose daemon died answers ENOTCONN
    if (code === 'ENOTCONN') throw fsError('EBUSY', 'mount', mountpoint, `${DIED}; run 'strata umount ${mountpoint}' first`)
    throw err
  }
  if (!st.isDirectory()) throw fsError('ENOTDIR', 'mount', mountpoint, 'mountpoint is not a directory')
  if (mountAt(mountpoint)?.fstype === FSTYPE) {
    const record = readRecord(mountpoint)
    if (record && !processAlive(record.pid)) throw fsError('EBUSY', 'mount', mountpoint, `${DIED}; run 'strata umount ${mountpoint}' first`)
    throw fsError('EBUSY', 'mount', mountpoint, `already mounted${record ? ` (${record.source})` : ''}; run 'strata umount ${mountpoint}' first`)
  }
}
