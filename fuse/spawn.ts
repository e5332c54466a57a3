import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CliError } from '../engine/cli/errors.js'
import { ensureRuntimeDir } from '../engine/cli/runtime.js'
import { daemonLogPath, type MountRecord } from './registry.js'
import type { DaemonConfig, DaemonReport } from './request.js'

const DAEMON = fileURLToPath(new URL('./daemon.js', import.meta.url))

/**
 * libuv's pool threads for the daemon: an idle mount waits for its next request in a poll(2) on
 * the pool, and LevelDB and host file calls need threads besides.
 */
const THREADPOOL = 64

/**
 * V8's heap for the daemon: a fresh process starts with a small heap that V8 grows by collecting
 * it whole, and the first requests a new mount serves allocate enough to set off one or two full
 * collections (a first lookup through 50 directory layers took 10–20 ms of them). A larger
 * starting old space and young generation spare those pauses for a few MiB of memory.
 */
const DAEMON_V8_FLAGS = ['--initial-old-space-size=64', '--min-semi-space-size=8']

function daemonEnv(): NodeJS.ProcessEnv {
  const asked = Number(process.env.UV_THREADPOOL_SIZE)
  return { ...process.env, UV_THREADPOOL_SIZE: String(Number.isFinite(asked) && asked > THREADPOOL ? asked : THREADPOOL) }
}

/**
 * The daemon's command line. STRATA_DAEMON_CPU_PROF=DIR has it write a V8 CPU profile into DIR
 * when it exits (node --cpu-prof, which NODE_OPTIONS does not pass on), to see where a mount's
 * time goes.
 */
function daemonArgs(): string[] {
  const profileDir = process.env.STRATA_DAEMON_CPU_PROF
  return [...DAEMON_V8_FLAGS, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), DAEMON]
}

export function logPathOf(config: DaemonConfig): string {
  return config.store !== undefined ? daemonLogPath({ store: config.store }) : daemonLogPath({ mountpoint: config.request.mountpoint })
}

type Outcome = DaemonReport | { exited: number | null; signal: NodeJS.Signals | null } | { failed: Error }

/** The daemon's first word: its report, or its end (or its spawn failing) before it reported. */
function firstOutcome(child: ChildProcess): Promise<Outcome> {
  return new Promise((resolve) => {
    child.once('message', (msg) => resolve(msg as DaemonReport))
    child.once('exit', (exited, signal) => resolve({ exited, signal }))
    child.once('error', (failed) => resolve({ failed }))
  })
}

function outcomeError(outcome: Exclude<Outcome, { ready: true }>, log: string): CliError {
  if ('failed' in outcome) return new CliError(`cannot start the mount daemon: ${outcome.failed.message}`)
  if ('exited' in outcome) return new CliError(`the mount daemon ended before mounting (${outcome.signal ?? `status ${outcome.exited}`}); see ${log}`)
  return new CliError(outcome.error)
}

/**
 * Starts a daemon in the background (its own session, output to its log in the runtime dir) and
 * returns once it has mounted, with the mount's record; its failure is thrown in words.
 */
export async function startDaemon(config: DaemonConfig): Promise<MountRecord> {
  ensureRuntimeDir()
  const log = logPathOf(config)
  const fd = openSync(log, 'a', 0o600)
  let child: ChildProcess
  try {
    child = spawn(process.execPath, daemonArgs(), { detached: true, stdio: ['ignore', fd, fd, 'ipc'], cwd: '/', env: daemonEnv() })
  } finally {
    closeSync(fd)
  }
  child.send(config)
  const outcome = await firstOutcome(child)
  if (child.connected) child.disconnect()
  child.unref()
  if ('ready' in outcome && outcome.ready) return outcome.record as MountRecord
  throw outcomeError(outcome, log)
}

/**
 * Runs a daemon in the foreground: output on this terminal, SIGINT/SIGTERM/SIGHUP passed on (the
 * daemon unmounts and exits), and its exit status returned once it ends. A mount that fails is
 * thrown in words.
 */
export async function runForeground(config: DaemonConfig): Promise<number> {
  const child = spawn(process.execPath, daemonArgs(), { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: daemonEnv() })
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1))))
  const forward = (signal: NodeJS.Signals) => () => void child.kill(signal)
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, forward(signal)] as const)
  for (const [signal, handler] of handlers) process.on(signal, handler)
  try {
    child.send(config)
    const outcome = await firstOutcome(child)
    if (child.connected) child.disconnect()
    if (!('ready' in outcome && outcome.ready)) {
      await exited
      throw outcomeError(outcome, 'the output above')
    }
    return await exited
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler)
  }
}
