import type { Command } from 'commander'
import { main, type Registration } from '../engine/cli/main.js'
import { registerMount } from './mountcmd.js'
import { helperArgs, registerInstallHelper } from './helper.js'

/** The commands the FUSE front end adds to the strata program. */
export const fuseRegistrations: readonly Registration[] = [
  (program: Command) => registerMount(program),
  (program: Command) => registerInstallHelper(program),
]

/** The strata command with the mount commands: what bin/strata.js runs. */
export function run(argv: string[] = process.argv): Promise<number> {
  return main(argv, fuseRegistrations)
}

/** mount(8)'s exit statuses for a helper: bad usage, and a mount that failed. */
const MOUNT_USAGE = 1
const MOUNT_FAILURE = 32

/** bin/mount.fuse.strata: mount(8)'s call turned into `strata mount`, with mount(8)'s exit statuses. */
export async function helperMain(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof helperArgs>
  try {
    parsed = helperArgs(args)
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`)
    return MOUNT_USAGE
  }
  if (parsed.fake) return 0
  const status = await run([process.argv[0], 'strata', ...parsed.args])
  return status === 0 ? 0 : status === 2 ? MOUNT_USAGE : MOUNT_FAILURE
}
