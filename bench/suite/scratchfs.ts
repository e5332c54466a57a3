/**
 * The file system a run reads its data from and every system writes to: an ext4 (with its
 * journal, as mkfs.ext4 makes it) in a sparse image on a loop device, made for the run and
 * removed at its end (kept for the next run with --keep, with the data in it). The loop device
 * does direct I/O on the image, so its pages are cached once, and takes the read-ahead of the
 * disk under the image.
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
import { existsSync, writeFileSync } from 'node:fs'
import { mkdir, open, rm, rmdir } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { deviceReadAhead, mountPoints, runCmd } from '../lib/proc.js'

/** Sparse: only what the run writes takes room on the host. */
const IMAGE_BYTES = 64 * 1024 ** 3
/** Half-second tries at unmounting the run's file system before giving up. */
const UNMOUNT_TRIES = 20

export interface ScratchFs {
  /** Where the run's data and the systems' files go. */
  path: string
  /** One line for the run's header and results: what the path is. */
  describe: string
  /** Unmounts the file system and, unless kept, removes its image. */
  close(): Promise<void>
}

/**
 * The run's ext4 in `parent`/scratch.img, mounted at `parent`/scratch: made anew, or the one a
 * run with `keep` left there.
 */
export async function scratchFsIn(parent: string, opts: { keep: boolean }): Promise<ScratchFs> {
  const image = join(parent, 'scratch.img')
  const dir = join(parent, 'scratch')
  const reused = existsSync(image)
  await mkdir(dir, { recursive: true })
  let loop: string | undefined
  try {
    if (!reused) await makeImage(image)
    loop = (await runCmd('losetup', ['--find', '--show', '--direct-io=on', image])).stdout.trim()
    matchReadAhead(loop, parent)
    // noinit_itable: no background zeroing of inode tables while the run measures (a sparse
    // image reads as zeros already)
    await runCmd('mount', ['-o', 'noinit_itable', loop, dir])
  } catch (err) {
    if (loop) await runCmd('losetup', ['-d', loop], { check: false })
    if (!reused) await rm(image, { force: true })
    await rmdir(dir).catch(() => {})
    throw new Error(`cannot mount the run's scratch file system (${(err as Error).message.split('\n')[0]}); it needs mkfs.ext4 (e2fsprogs) and loop devices, or run with --host-fs`)
  }
  const attached = loop
  return {
    path: dir,
    describe: `ext4 (journaled) on a loop device with direct I/O, ${reused ? 'kept from an earlier run (--keep)' : 'made for the run'}`,
    close: async () => {
      await unmountAll(dir, image)
      const detached = await runCmd('losetup', ['-d', attached], { check: false })
      if (!opts.keep) await rm(image, { force: true })
      await rmdir(dir)
      if (detached.code !== 0) throw new Error(`cannot detach ${attached} (${detached.stderr.trim()}): its image's space stays taken until it is detached`)
    },
  }
}

async function makeImage(image: string): Promise<void> {
  const fh = await open(image, 'w')
  try {
    await fh.truncate(IMAGE_BYTES)
  } finally {
    await fh.close()
  }
  await runCmd('mkfs.ext4', ['-q', '-F', image])
}

/** The loop device reads ahead as much as the disk under `hostPath` (a loop device's default is far less). */
function matchReadAhead(loop: string, hostPath: string): void {
  const kib = deviceReadAhead(hostPath).readAheadKiB
  if (kib !== null) writeFileSync(`/sys/block/${basename(loop)}/queue/read_ahead_kb`, String(kib))
}

/**
 * Unmounts what a run left mounted below `dir` (deepest first: an interrupted workload's mounts),
 * then `dir` itself, waiting a few seconds for files still being closed.
 */
async function unmountAll(dir: string, image: string): Promise<void> {
  const below = [...mountPoints()].filter((m) => m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length)
  for (const m of below) {
    const r = await runCmd('umount', [m], { check: false })
    if (r.code !== 0) await runCmd('umount', ['-l', m], { check: false })
  }
  for (let tries = 0; mountPoints().has(dir); tries++) {
    if (tries === UNMOUNT_TRIES) throw new Error(`${dir} is still busy after ${UNMOUNT_TRIES / 2} s: unmount it, detach its loop device and remove ${image} by hand`)
    const r = await runCmd('umount', [dir], { check: false })
    if (r.code !== 0) await sleep(500)
  }
}

/** `--host-fs`: data and the systems' files go in `parent` itself, on its own file system. */
export function hostScratch(parent: string): ScratchFs {
  return { path: parent, describe: `the data dir's own file system (--host-fs)`, close: async () => {} }
}
