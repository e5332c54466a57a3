import { existsSync, rmSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import type { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Store } from '../store.js'
import { StoreError, isCode } from '../errors.js'
import { inUseBy } from '../store/db.js'
import { CliError, ReportedExit } from './errors.js'
import type { CliIo } from './io.js'
import { storeSocketPath } from './runtime.js'
import { FRAME, jsonFrame, readFrames, type ExitMessage, type ServerRequest } from './wire.js'

/**
 * How long a command waits at least for a store whose holder is a server starting or stopping
 * (its socket is there, or about to be).
 */
const SERVER_WAIT_MS = 5000
/**
 * How long a command waits by default for another process (a command, a program using the
 * engine) to close the store: most commands take seconds, and two run from scripts at once should
 * take turns rather than fail. `--wait SECONDS` or $STRATA_LOCK_WAIT change it.
 */
export const DEFAULT_LOCK_WAIT_MS = 30_000
const RETRY_MS = 100

/** A live server's connection, or why there is none: no socket file, or one nobody listens on. */
export type ServerProbe = Socket | 'none' | 'stale'

export function connectServer(socketPath: string): Promise<ServerProbe> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath)
    socket.once('connect', () => {
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (err) => {
      socket.destroy()
      if (isCode(err, 'ENOENT')) resolve('none')
      // a socket file whose server died, or a file that is no socket at all
      else if (isCode(err, 'ECONNREFUSED') || isCode(err, 'ENOTSOCK')) resolve('stale')
      else reject(new CliError(`cannot reach the store server at ${socketPath}: ${err.message}`))
    })
  })
}

/**
 * Sends one request and relays the answer: stdout and stderr frames to `out` as they come (a
 * slow reader slows the server down rather than filling memory), then the exit message.
 */
export async function requestServer(socket: Socket, request: ServerRequest, out: { stdout: Writable; stderr: Writable }): Promise<ExitMessage> {
  socket.on('error', () => {}) // reported through the frame reader instead
  try {
    socket.write(jsonFrame(FRAME.request, request))
    for await (const frame of readFrames(socket)) {
      if (frame.type === FRAME.stdout) await writeAll(out.stdout, frame.payload)
      else if (frame.type === FRAME.stderr) await writeAll(out.stderr, frame.payload)
      else if (frame.type === FRAME.exit) return JSON.parse(frame.payload.toString('utf8')) as ExitMessage
    }
  } catch (err) {
    if (isCode(err, 'EPIPE') || isCode(err, 'ERR_STREAM_DESTROYED')) throw err
    throw new CliError(`the store server's connection failed: ${(err as Error).message}`)
  } finally {
    socket.destroy()
  }
  throw new CliError('the store server closed the connection before the command finished; see its log')
}

function writeAll(stream: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (err) => (err ? reject(err) : resolve())))
}

/**
 * The store at `path`, opened by this process; or, when a server holds it, the whole command
 * line run by that server with its output relayed (thrown as `ReportedExit`, which ends the
 * local run with the server's exit status). A socket left by a server that died is removed
 * once the store has opened, so it cannot be mistaken for a live one again.
 */
export async function openStoreOrForward(path: string, io: CliIo, lockWaitMs = DEFAULT_LOCK_WAIT_MS): Promise<Store> {
  const started = Date.now()
  let told = false
  // a runtime dir too deep for a socket name holds no server to ask
  let socketPath: string | undefined
  try {
    socketPath = storeSocketPath(path)
  } catch {
    socketPath = undefined
  }
  for (;;) {
    const probe: ServerProbe = socketPath === undefined ? 'none' : await connectServer(socketPath)
    if (typeof probe !== 'string') {
      const request: ServerRequest = { op: 'cli', args: [...io.args], cwd: io.cwd, stderrIsTTY: io.stderrIsTTY, columns: io.columns }
      const exit = await requestServer(probe, request, io)
      if (exit.retry !== true) throw new ReportedExit(exit.code)
    }
    try {
      const store = await Store.open({ path })
      if (probe === 'stale' && socketPath !== undefined) rmSync(socketPath, { force: true })
      return store
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'EBUSY')) throw err
      const waited = Date.now() - started
      const limit = socketPath !== undefined && existsSync(socketPath) ? Math.max(SERVER_WAIT_MS, lockWaitMs) : lockWaitMs
      if (waited >= limit) throw limit === 0 ? err : new StoreError('EBUSY', `${err.message} (waited ${seconds(waited)} s)`)
      if (!told) {
        told = true
        io.stderr.write(`strata: ${inUseBy(path)}; waiting up to ${seconds(limit)} s (--wait SECONDS to change)\n`)
      }
      await sleep(Math.min(RETRY_MS, limit - waited))
    }
  }
}

const seconds = (ms: number): number => Number((ms / 1000).toFixed(1))
