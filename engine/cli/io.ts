import { AsyncLocalStorage } from 'node:async_hooks'
import type { Writable } from 'node:stream'
import type { Store } from '../store.js'

/**
 * Where one run of a command line reads and writes: the process's own streams and cwd, or those of
 * a client whose command a store server runs in-process (several at once, so the run's context
 * travels with its async calls rather than living in globals).
 */
export interface CliIo {
  /** The command line's arguments, without node and the script (what a server is sent). */
  readonly args: readonly string[]
  /** Host paths given to commands are relative to this directory. */
  readonly cwd: string
  readonly stdout: Writable
  readonly stderr: Writable
  /** Whether stderr is a terminal (progress bars are drawn only there), and its width. */
  readonly stderrIsTTY: boolean
  readonly columns?: number
  /** The store of the server running this command: used as is, never opened or closed by the command. */
  readonly store?: Store
  /**
   * Refuses host paths the process running the command cannot use (a server's own FUSE mounts,
   * whose requests would wait for the very event loop a synchronous host scan blocks).
   */
  readonly checkHostPath?: (path: string) => void
}

const storage = new AsyncLocalStorage<CliIo>()

/** The context of the command line being run; the process's own when none was set. */
export function cliIo(): CliIo {
  return storage.getStore() ?? processIo([])
}

export function processIo(args: readonly string[]): CliIo {
  return { args, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr, stderrIsTTY: process.stderr.isTTY === true, columns: process.stderr.columns }
}

/** Runs `fn` with `io` as the context of every call it makes, however deep or asynchronous. */
export function withCliIo<T>(io: CliIo, fn: () => Promise<T>): Promise<T> {
  return storage.run(io, fn)
}
