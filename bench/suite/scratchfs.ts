/**
 * The file system every system writes to during a run: a fresh ext4 (with its journal, as
 * mkfs.ext4 makes it) in a sparse image on a loop device, mounted at the run's directory and
 * removed at its end.
 *
 * Why not the data dir's own file system: what a run measures for the systems that create host
 * files (kernel overlayfs, fuse-overlayfs, directory layers, the plain dir) must not depend on
 * what that file system went through before. On a host ext4 without a journal (this project's
 * CI and benchmark machine), ext4's inode allocator passes over every inode freed in the last
 * few minutes, reading its inode table block each time; after the `rm -rf` of thousands of
 * files a create there cost 0.6–1.1 ms of kernel CPU instead of 40 µs (perf: find_inode_bit →
 * recently_deleted), and it grows with every repetition. That made the kernel's untar of
 * /usr/include 5–7 times slower (7.5 s against 1.0 s on a fresh ext4), by how much depending on
 * which system had deleted what just before, while Strata's store layers, which create few host
 * files, hardly paid it.
 */
import { mkdir, open, rm, rmdir } from 'node:fs/promises'
import { runCmd } from '../lib/proc.js'

/** Sparse: only what the run writes takes room on the host. */
const IMAGE_BYTES = 64 * 1024 ** 3

export interface ScratchFs {
  /** Where the run writes: the mounted file system, or the host dir with `--host-fs`. */
  path: string
  /** One line for the run's header and results: what the path is. */
  describe: string
  /** Unmounts and removes the image (and whatever the run left in it). */
  close(): Promise<void>
}

/** A fresh journaled ext4 mounted at `dir` (created), its image beside it. */
export async function freshScratchFs(dir: string): Promise<ScratchFs> {
  const image = `${dir}.img`
  await mkdir(dir, { recursive: true })
  const fh = await open(image, 'w')
  try {
    await fh.truncate(IMAGE_BYTES)
  } finally {
    await fh.close()
  }
  try {
    await runCmd('mkfs.ext4', ['-q', '-F', image])
    // noinit_itable: no background zeroing of inode tables while the run measures (a sparse
    // image reads as zeros already)
    await runCmd('mount', ['-o', 'loop,noinit_itable', image, dir])
  } catch (err) {
    await rm(image, { force: true })
    await rmdir(dir).catch(() => {})
    throw new Error(`cannot make the run's scratch file system (${(err as Error).message.split('\n')[0]}); it needs mkfs.ext4 (e2fsprogs) and loop devices, or run with --host-fs`)
  }
  return {
    path: dir,
    describe: `fresh ext4 (journaled) on a loop device, ${IMAGE_BYTES / 1024 ** 3} GiB sparse image`,
    close: async () => {
      await runCmd('umount', [dir], { check: false })
      await rm(image, { force: true })
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** `--host-fs`: the run writes into a dir of the data dir's own file system. */
export async function hostScratch(dir: string): Promise<ScratchFs> {
  await mkdir(dir, { recursive: true })
  return { path: dir, describe: `the data dir's own file system (--host-fs)`, close: () => rm(dir, { recursive: true, force: true }) }
}
