import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Outcome, Step } from './probe-runner.js'

/**
 * One lower tree seen through three systems, each with an upper of its own: the kernel's
 * overlayfs, a Strata mount of directory layers (`-o lowerdir=…,upperdir=…,workdir=…`) and a
 * Strata `--rw` mount of an active store snapshot made from the same tree. Steps run as other
 * users (setpriv) through each, so that what they may do can be compared with the kernel.
 */

export type SystemName = 'kernel overlayfs' | 'strata -o lowerdir' | 'strata --rw store'
export const SYSTEMS: SystemName[] = ['kernel overlayfs', 'strata -o lowerdir', 'strata --rw store']

export interface User {
  uid: number
  gid: number
  groups: number[]
}

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const RUNNER = fileURLToPath(new URL('./probe-runner.js', import.meta.url))

/** Why these tests cannot run here, or undefined. */
export function cannotCompare(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mounts, other users)'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) {
    try {
      execFileSync('modprobe', ['overlay'], { stdio: 'ignore' })
    } catch {
      return 'no overlayfs in this kernel'
    }
  }
  if (!['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p))) return 'no setpriv (util-linux)'
  return undefined
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, maxBuffer: 16 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`))
      else resolve(stdout)
    })
  })
}

export interface Mounted {
  name: SystemName
  /** The merged tree. */
  mnt: string
  /** Runs steps as `user` (root when omitted) and returns each step's outcome. */
  as(user: User | null, steps: Step[]): Promise<Outcome[]>
}

/**
 * A temp dir any user may enter, holding the runner; the callback builds the lower tree in
 * `lower`, then `each` runs once per system on a fresh upper. Everything is unmounted and removed
 * at the end, on failure too.
 */
export async function acrossSystems(build: (lower: string) => void | Promise<void>, each: (m: Mounted) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'strata-parity-'))
  chmodSync(root, 0o755)
  const runtime = join(root, 'run')
  const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
  const strata = (args: string[]): Promise<string> => run(process.execPath, [BIN, ...args], env)
  const mounted: { mnt: string; kernel: boolean }[] = []
  try {
    const runner = join(root, 'runner.mjs')
    copyFileSync(RUNNER, runner)
    const lower = join(root, 'lower')
    await mkdir(lower)
    chmodSync(lower, 0o755)
    await build(lower)
    const store = join(root, 'store')
    await strata(['--store', store, 'snapshot', lower, '--name', 'base'])
    await strata(['--store', store, 'prepare', 'work', 'base'])
    for (const name of SYSTEMS) {
      const dir = join(root, name.replace(/[^a-z]+/g, '-'))
      const [mnt, upper, work] = ['mnt', 'upper', 'work'].map((d) => join(dir, d))
      for (const d of [dir, mnt, upper, work]) {
        await mkdir(d)
        chmodSync(d, 0o755)
      }
      // redirect_dir=on as Strata's default (the kernel's follows its build): renaming a lower dir then works in all three
      const layers = `lowerdir=${lower},upperdir=${upper},workdir=${work},redirect_dir=on`
      if (name === 'kernel overlayfs') await run('mount', ['-t', 'overlay', 'overlay', '-o', layers, mnt])
      else if (name === 'strata -o lowerdir') await strata(['mount', '-o', layers, mnt])
      else await strata(['--store', store, 'mount', '--rw', 'work', mnt])
      mounted.push({ mnt, kernel: name === 'kernel overlayfs' })
      const as = async (user: User | null, steps: Step[]): Promise<Outcome[]> => {
        const creds = user === null ? [] : ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups']
        const [file, ...args] = [...creds, process.execPath, runner, JSON.stringify(steps)]
        return JSON.parse(await run(file!, args)) as Outcome[]
      }
      await each({ name, mnt, as })
      const done = mounted.pop()!
      if (done.kernel) await run('umount', [done.mnt])
      else await strata(['umount', done.mnt])
    }
  } finally {
    for (const m of mounted) {
      try {
        execFileSync('umount', ['-l', m.mnt], { stdio: 'ignore' })
      } catch {
        // already gone
      }
    }
    await rm(root, { recursive: true, force: true })
  }
}
