import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

/** Kernel overlayfs mounts for the differential test: made, and always taken down again. */

const run = promisify(execFile)

export interface OverlayMountOptions {
  /** Top first, as the kernel's lowerdir= option. */
  lowerdir: string[]
  upperdir?: string
  workdir?: string
  /** Extra options, e.g. ['redirect_dir=on', 'index=off']. */
  options?: string[]
}

export async function mountOverlay(target: string, o: OverlayMountOptions): Promise<void> {
  const opts = [`lowerdir=${o.lowerdir.join(':')}`]
  if (o.upperdir !== undefined) opts.push(`upperdir=${o.upperdir}`, `workdir=${o.workdir}`)
  opts.push(...(o.options ?? []))
  await mkdir(target, { recursive: true })
  await run('mount', ['-t', 'overlay', 'overlay', '-o', opts.join(','), target])
}

export async function unmount(target: string): Promise<void> {
  await run('umount', [target])
}

/** Makes a kernel `char 0/0` whiteout; node has no mknod. */
export async function mknodWhiteout(path: string): Promise<void> {
  await run('mknod', [path, 'c', '0', '0'])
}

/**
 * Why the kernel side cannot run here, or undefined when it can: root and a working overlay
 * mount (tried once, on empty dirs) are needed.
 */
export async function kernelOverlayUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'kernel overlayfs needs Linux'
  if (process.getuid?.() !== 0) return 'mounting kernel overlayfs needs root'
  const dir = await mkdtemp(join(tmpdir(), 'strata-kdiff-probe-'))
  try {
    for (const d of ['l', 'u', 'w']) await mkdir(join(dir, d))
    const m = join(dir, 'm')
    try {
      await mountOverlay(m, { lowerdir: [join(dir, 'l')], upperdir: join(dir, 'u'), workdir: join(dir, 'w'), options: ['redirect_dir=on', 'index=on'] })
    } catch (err) {
      return `cannot mount kernel overlayfs: ${(err as Error).message.trim()}`
    }
    await unmount(m)
    return undefined
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
