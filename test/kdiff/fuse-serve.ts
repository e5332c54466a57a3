import { Store, openDirStack, type SnapshotFs } from '../../engine/index.js'
import { IMMUTABLE_CACHE, STORE_WRITABLE_CACHE, WRITABLE_CACHE, mountFuse } from '../../fuse/mount.js'

/**
 * A Strata FUSE mount in a process of its own, for the differential test: the test process
 * then calls into the mount with plain system calls, as any program would. It prints "ready"
 * once mounted, and unmounts, closes and exits on SIGTERM.
 *
 *   node fuse-serve.js dir MNT UPPER WORK LOWER...      directory layers, directory upper
 *   node fuse-serve.js store MNT STORE KEY              a store snapshot (read-only unless active)
 */
const [kind, mountpoint, ...rest] = process.argv.slice(2)
let fs: SnapshotFs
let store: Store | undefined
let statfsPath: string
let writable = true
if (kind === 'dir') {
  const [upperdir, workdir, ...lowerdir] = rest
  fs = await openDirStack({ lowerdir, upperdir, workdir, redirectDir: 'on' })
  statfsPath = upperdir!
} else {
  const [storePath, key] = rest
  store = await Store.open({ path: storePath })
  fs = store.fs(key!, { redirectDir: 'on' })
  statfsPath = storePath!
  writable = (await store.stat(key!)).kind === 'active'
}
// the policies `strata mount` picks (fuse/plan.ts)
const cache = !writable ? IMMUTABLE_CACHE : store ? STORE_WRITABLE_CACHE : WRITABLE_CACHE
const mount = await mountFuse({ mountpoint: mountpoint!, fs, readOnly: !writable, cache, fsname: 'strata-test', statfsPath })
process.on('SIGTERM', () => { mount.unmount({ lazy: true }).catch(() => {}) })
process.stdout.write('ready\n')
await mount.closed
await store?.close()
