import { resolve } from 'node:path'
import { InvalidArgumentError, type Command } from 'commander'
import { defaultStorePath, type Store } from '../index.js'
import { DEFAULT_LOCK_WAIT_MS, openStoreOrForward } from './client.js'
import { cliIo } from './io.js'

import { CliError } from './errors.js'

export { CliError }

/** Options every command takes (declared once, on the program). */
export interface GlobalOptions {
  /** Absolute path of the store. */
  store: string
  json: boolean
  /** How long to wait for another process to close the store (`--wait`, $STRATA_LOCK_WAIT). */
  lockWaitMs: number
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ store?: string; json?: boolean; wait?: number }>()
  // a served command line runs on the server's store: the client found that server by this very path
  const served = cliIo().store
  return { store: served ? served.path : hostPath(o.store ?? defaultStorePath()), json: o.json === true, lockWaitMs: lockWaitMs(o.wait) }
}

/** Seconds, as `--wait` and $STRATA_LOCK_WAIT give them: a number, zero or more. */
export function parseWaitSeconds(value: string): number {
  const s = Number(value)
  if (value.trim() === '' || !Number.isFinite(s) || s < 0) throw new InvalidArgumentError(`'${value}' is not a number of seconds`)
  return s
}

function lockWaitMs(option: number | undefined): number {
  if (option !== undefined) return option * 1000
  const env = process.env.STRATA_LOCK_WAIT
  if (env === undefined || env === '') return DEFAULT_LOCK_WAIT_MS
  try {
    return parseWaitSeconds(env) * 1000
  } catch {
    throw new CliError(`STRATA_LOCK_WAIT='${env}' is not a number of seconds`)
  }
}

/**
 * A host path given on the command line, made absolute against the cwd of whoever typed it: a
 * store server runs its clients' command lines in its own process, from its own cwd.
 */
export function hostPath(path: string): string {
  const io = cliIo()
  const abs = resolve(io.cwd, path)
  io.checkHostPath?.(abs)
  return abs
}

/**
 * Opens the store, runs `fn`, and closes the store however `fn` ends: an unclosed store would
 * leave its LevelDB lock held until the process exits. When a server holds the store (a mount
 * daemon), the whole command line runs there instead, so an action must not print anything
 * before calling this.
 */
export async function withStore<T>(cmd: Command, fn: (store: Store, opts: GlobalOptions) => Promise<T>): Promise<T> {
  const opts = globalOptions(cmd)
  const served = cliIo().store
  if (served) return fn(served, opts)
  const store = await openStoreOrForward(opts.store, cliIo(), opts.lockWaitMs)
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
  cliIo().stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** The single JSON document a `--json` command prints. */
export function printJson(value: unknown): void {
  cliIo().stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Collects repeated `--label key=value` options into one record. */
export function collectLabel(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError('labels are written key=value')
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) }
}
