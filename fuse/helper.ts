import { lstatSync, readlinkSync, realpathSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { CliError } from '../engine/cli/errors.js'
import { hostPath, printJson, printText, globalOptions } from '../engine/cli/context.js'
import { isCode } from '../engine/errors.js'

/** The file mount(8) runs for `-t fuse.strata`: `mount.<type>` in /sbin (on usr-merged systems, /usr/sbin). */
export const HELPER_NAME = 'mount.fuse.strata'
const DEFAULT_DIR = '/sbin'

/** bin/mount.fuse.strata of this package (dist/fuse/helper.js -> ../../bin). */
function shippedHelper(): string {
  return realpathSync(fileURLToPath(new URL(`../../bin/${HELPER_NAME}`, import.meta.url)))
}

/**
 * The strata arguments for mount(8)'s call of a helper, `mount.fuse.strata SOURCE MNT [-sfnv]
 * [-o OPTS] [-t TYPE]`: `strata mount SOURCE MNT -o OPTS`. With layer options SOURCE is the
 * name in the mount table; without, it is the snapshot to mount. `fake` is mount(8)'s -f (check,
 * but do not mount).
 */
export function helperArgs(args: readonly string[]): { args: string[]; fake: boolean } {
  const positional: string[] = []
  const options: string[] = []
  let sloppy = false
  let fake = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '-o' || a === '-t') {
      if (i + 1 >= args.length) throw new CliError(`${HELPER_NAME}: ${a} needs a value`)
      if (a === '-o') options.push(args[i + 1])
      i++
    } else if (a.startsWith('-o')) options.push(a.slice(2))
    else if (a.startsWith('-t')) continue
    else if (/^-[nsvf]+$/.test(a)) {
      sloppy ||= a.includes('s')
      fake ||= a.includes('f')
    } else if (a.startsWith('-') && a.length > 1) throw new CliError(`${HELPER_NAME}: unknown flag ${a}`)
    else positional.push(a)
  }
  if (positional.length !== 2) throw new CliError(`usage: ${HELPER_NAME} SOURCE MOUNTPOINT [-n] [-s] [-v] [-o OPTIONS]`)
  return { args: ['mount', positional[0], positional[1], ...options.flatMap((o) => ['-o', o]), ...(sloppy ? ['--sloppy'] : [])], fake }
}

export function registerInstallHelper(program: Command): void {
  program
    .command('install-helper')
    .description(`install ${HELPER_NAME} where mount(8) looks for it, so 'mount -t fuse.strata' and fstab lines work (needs root)`)
    .option('--dir <dir>', 'where mount(8) looks for helpers', DEFAULT_DIR)
    .option('--force', 'replace another file of that name')
    .action((flags: { dir: string; force?: boolean }, cmd: Command) => {
      const dir = hostPath(flags.dir)
      if (flags.dir === DEFAULT_DIR && process.getuid?.() !== 0) throw new CliError(`installing into ${dir} needs root (sudo strata install-helper)`)
      const target = join(dir, HELPER_NAME)
      const helper = shippedHelper()
      const installed = installLink(target, helper, flags.force === true)
      if (globalOptions(cmd).json) printJson({ helper: target, target: helper, installed })
      else printText(installed ? `installed ${target} -> ${helper}` : `${target} already points to ${helper}`)
    })
}

/** A symlink at `target` to `helper`; false when it is there already. */
function installLink(target: string, helper: string, force: boolean): boolean {
  let existing: string | undefined
  try {
    const st = lstatSync(target)
    existing = st.isSymbolicLink() ? readlinkSync(target) : 'a file'
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err
  }
  if (existing === helper) return false
  if (existing !== undefined && !force) throw new CliError(`${target} exists (${existing === 'a file' ? 'a file' : `a link to ${existing}`}); --force replaces it`)
  try {
    if (existing !== undefined) rmSync(target, { force: true })
    symlinkSync(helper, target)
  } catch (err) {
    if (isCode(err, 'EACCES') || isCode(err, 'EPERM')) throw new CliError(`cannot write ${target}: permission denied; installing the helper needs root (sudo strata install-helper)`)
    if (isCode(err, 'ENOENT')) throw new CliError(`cannot install ${target}: no directory ${target.slice(0, target.lastIndexOf('/'))}`)
    throw err
  }
  return true
}
