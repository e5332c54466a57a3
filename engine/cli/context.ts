import { InvalidArgumentError, type Command } from 'commander'
import { Store, defaultStorePath } from '../index.js'

/** Options every command takes (declared once, on the program). */
export interface GlobalOptions {
  store: string
  json: boolean
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ store?: string; json?: boolean }>()
  return { store: o.store ?? defaultStorePath(), json: o.json === true }
}

/** A failure the CLI reports as one line and exit status 1, after any output already printed. */
export class CliError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/**
 * Opens the store, runs `fn`, and closes the store however `fn` ends: an unclosed store would
 * leave its LevelDB lock held until the process exits.
 */
export async function withStore<T>(cmd: Command, fn: (store: Store, opts: GlobalOptions) => Promise<T>): Promise<T> {
  const opts = globalOptions(cmd)
  const store = await Store.open({ path: opts.store })
  let result: T
  try {
    result = await fn(store, opts)
  } catch (err) {
    // the first error is the one worth reporting; a failing close after it would only hide it
    await store.close().catch(() => {})
    throw err
  }
  await store.close()
  return result
}

/** Lines of human-readable output; nothing at all for an empty result. */
export function printText(text: string): void {
  if (text === '') return
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** The single JSON document a `--json` command prints. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Collects repeated `--label key=value` options into one record. */
export function collectLabel(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError('labels are written key=value')
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) }
}
