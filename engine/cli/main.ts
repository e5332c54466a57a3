import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { isCode } from '../errors.js'
import { ReportedExit } from './errors.js'
import { cliIo, processIo, withCliIo } from './io.js'
import { parseWaitSeconds } from './context.js'
import { registerFiles } from './files.js'
import { registerInspection, registerLifecycle } from './lifecycle.js'
import { registerMaintenance } from './maintenance.js'
import { registerTransfer } from './transfer.js'

/** Exit status for a command line that could not be understood, as most Unix tools use. */
const USAGE_EXIT = 2
/** Commander's "errors" that are really requested output (help, version). */
const INFORMATIONAL = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version'])

function packageVersion(): string {
  // dist/engine/cli/main.js -> package.json at the package root
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Adds commands to the program; how commands from outside the engine (the mount commands) join it. */
export type Registration = (program: Command) => void

export function buildProgram(registrations: readonly Registration[] = []): Command {
  const program = new Command('strata')
    .description('Copy-on-write snapshot store with Linux overlayfs semantics')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .option('--store <dir>', 'store directory (default: $STRATA_STORE, else ~/.local/share/strata)')
    .option('--json', 'print the result as one JSON document on stdout')
    .option('--wait <seconds>', 'how long to wait for another process to close the store (default: $STRATA_LOCK_WAIT, else 30)', parseWaitSeconds)
    .configureHelp({ showGlobalOptions: true })
    // set before the commands are added, so every command inherits them
    .exitOverride()
    // help and usage errors go where the command line's output goes (a client's, when served)
    .configureOutput({
      writeOut: (text) => cliIo().stdout.write(text),
      writeErr: (text) => cliIo().stderr.write(text),
      outputError: (text, write) => write(`strata: ${text.replace(/^error: /, '')}`),
    })
  registerTransfer(program)
  registerInspection(program)
  registerFiles(program)
  registerLifecycle(program)
  registerMaintenance(program)
  for (const register of registrations) register(program)
  return program
}

/**
 * Runs the CLI on `argv` (as process.argv) and returns the exit status. `registrations` add
 * commands the engine does not define (bin/strata.js adds the mount commands this way).
 */
export async function main(argv: string[] = process.argv, registrations: readonly Registration[] = []): Promise<number> {
  // a reader that stops early (`strata cat … | head`) is not an error worth a message
  process.stdout.on('error', (err) => {
    if (!isCode(err, 'EPIPE')) reportError(err)
  })
  const args = argv.slice(2)
  return withCliIo(processIo(args), () => runCommandLine(args, registrations))
}

/**
 * Runs one command line (arguments without node and the script) with the current context's
 * streams and returns its exit status; a store server runs its clients' command lines with this.
 */
export async function runCommandLine(args: readonly string[], registrations: readonly Registration[] = []): Promise<number> {
  try {
    await buildProgram(registrations).parseAsync([...args], { from: 'user' })
    return 0
  } catch (err) {
    if (err instanceof ReportedExit) return err.exitCode
    if (err instanceof CommanderError) return INFORMATIONAL.has(err.code) ? err.exitCode : USAGE_EXIT
    if (isCode(err, 'EPIPE')) return 0
    reportError(err)
    return 1
  }
}

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  const { stderr } = cliIo()
  stderr.write(`strata: ${message}\n`)
  if (process.env.STRATA_DEBUG === '1' && err instanceof Error && err.stack) stderr.write(`${err.stack}\n`)
}
