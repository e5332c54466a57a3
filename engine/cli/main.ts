import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { isCode } from '../errors.js'
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

export function buildProgram(): Command {
  const program = new Command('strata')
    .description('Copy-on-write snapshot store with Linux overlayfs semantics')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .option('--store <dir>', 'store directory (default: $STRATA_STORE, else ~/.local/share/strata)')
    .option('--json', 'print the result as one JSON document on stdout')
    .configureHelp({ showGlobalOptions: true })
    // set before the commands are added, so every command inherits them
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`strata: ${text.replace(/^error: /, '')}`) })
  registerTransfer(program)
  registerInspection(program)
  registerFiles(program)
  registerLifecycle(program)
  registerMaintenance(program)
  return program
}

/** Runs the CLI on `argv` (as process.argv) and returns the exit status. */
export async function main(argv: string[] = process.argv): Promise<number> {
  // a reader that stops early (`strata cat … | head`) is not an error worth a message
  process.stdout.on('error', (err) => {
    if (!isCode(err, 'EPIPE')) reportError(err)
  })
  try {
    await buildProgram().parseAsync(argv)
    return 0
  } catch (err) {
    if (err instanceof CommanderError) return INFORMATIONAL.has(err.code) ? err.exitCode : USAGE_EXIT
    if (isCode(err, 'EPIPE')) return 0
    reportError(err)
    return 1
  }
}

function reportError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`strata: ${message}\n`)
  if (process.env.STRATA_DEBUG === '1' && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`)
}
