import { chmodSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import type { Store } from '../store.js'
import { withCliIo } from './io.js'
import { runCommandLine, type Registration } from './main.js'
import { FRAME, MAX_FRAME, encodeFrame, jsonFrame, readFirstFrame, type CliRequest, type ExitMessage, type FrameType, type OpRequest } from './wire.js'

/** Where an operation writes what its client prints. */
export interface OpIo {
  stdout: Writable
  stderr: Writable
}

/** An operation other than running a command line (the mount daemon's mount, umount…). */
export type OpHandler = (request: OpRequest, io: OpIo) => Promise<ExitMessage>

export interface CliServerOptions {
  /**
   * The open store every command line runs on; the server never closes it. Without one the
   * server answers its operations only.
   */
  store?: Store
  socketPath: string
  /** Commands beyond the engine's, as given to `main`. */
  registrations?: readonly Registration[]
  ops?: Readonly<Record<string, OpHandler>>
  /** Throws for a host path the server's process must not use (see CliIo.checkHostPath). */
  checkHostPath?: (path: string) => void
  /** Where the server reports a connection that failed (a log). */
  log?: (message: string) => void
}

/**
 * Serves the CLI of one open store over a unix socket: a client's command line runs in this
 * process on this store (LevelDB admits one process), with its output streamed back and host
 * paths resolved against the client's cwd.
 */
export class CliServer {
  /** Command lines being run; the store must stay open until they end. */
  private readonly running = new Set<Promise<unknown>>()
  private readonly sockets = new Set<Socket>()
  private stopping = false

  private constructor(private readonly server: Server, private readonly opts: CliServerOptions) {
    server.on('connection', (socket) => this.accept(socket))
  }

  /**
   * Listens on `opts.socketPath` (mode 0600). A socket file already there is replaced: the caller
   * holds the store, so no live server can be using it.
   */
  static async listen(opts: CliServerOptions): Promise<CliServer> {
    rmSync(opts.socketPath, { force: true })
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.socketPath, () => {
        server.off('error', reject)
        resolve()
      })
    })
    chmodSync(opts.socketPath, 0o600)
    return new CliServer(server, opts)
  }

  get socketPath(): string {
    return this.opts.socketPath
  }

  /**
   * Runs no more requests and waits for the command lines running. Connections are still taken
   * (and answered "retry") until `close`: a client finding the socket there knows a server is
   * letting go of the store and waits for it, rather than failing on the store's lock.
   */
  async stop(): Promise<void> {
    this.stopping = true
    while (this.running.size > 0) await Promise.allSettled([...this.running])
  }

  /** Stops listening, which removes the socket file; connections open stay until answered. */
  close(): void {
    this.stopping = true
    if (this.server.listening) this.server.close()
  }

  /** Resolves once every client has hung up, or after `ms` (a client that keeps its end open is not waited for). */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const s of this.sockets) s.destroy()
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {}) // a client that went away mid-answer: its command still ends normally
    this.serve(socket).catch((err: unknown) => {
      this.opts.log?.(`request failed: ${err instanceof Error ? err.message : String(err)}`)
      socket.destroy()
    })
  }

  private async serve(socket: Socket): Promise<void> {
    const request = await readRequest(socket)
    if (request === undefined) return void socket.destroy()
    const cli = request.op === 'cli' ? (request as unknown as CliRequest) : undefined
    const stdout = frameStream(socket, FRAME.stdout)
    const stderr = frameStream(socket, FRAME.stderr, cli)
    let exit: ExitMessage
    if (this.stopping) exit = { code: 1, retry: true }
    else if (cli) exit = { code: await this.runCli(cli, stdout, stderr) }
    else {
      const handler = this.opts.ops?.[request.op]
      if (handler) exit = await handler(request, { stdout, stderr })
      else {
        stderr.write(`strata: the store server does not know the request '${String(request.op)}'\n`)
        exit = { code: 2 }
      }
    }
    stdout.end()
    stderr.end()
    await Promise.allSettled([finished(stdout), finished(stderr)])
    socket.end(jsonFrame(FRAME.exit, exit))
  }

  private runCli(req: CliRequest, stdout: Writable, stderr: Writable): Promise<number> {
    const store = this.opts.store
    if (!store) {
      stderr.write('strata: this server holds no store and runs no commands\n')
      return Promise.resolve(2)
    }
    if (!Array.isArray(req.args) || !req.args.every((a) => typeof a === 'string') || typeof req.cwd !== 'string') {
      stderr.write('strata: malformed command request\n')
      return Promise.resolve(2)
    }
    const io = { args: req.args, cwd: req.cwd, stdout, stderr, stderrIsTTY: req.stderrIsTTY === true, columns: req.columns, store, checkHostPath: this.opts.checkHostPath }
    const run = withCliIo(io, () => runCommandLine(req.args, this.opts.registrations))
    // only command lines are waited for by `stop`: an operation (an umount) may be what stops the server
    this.running.add(run)
    const forget = (): void => void this.running.delete(run)
    run.then(forget, forget)
    return run
  }
}

const gone = (): Error => Object.assign(new Error('the client went away'), { code: 'EPIPE' })

/** The client's request: its first frame, which must be a request. */
async function readRequest(socket: Socket): Promise<OpRequest | undefined> {
  const frame = await readFirstFrame(socket)
  if (frame?.type !== FRAME.request) return undefined
  const value = JSON.parse(frame.payload.toString('utf8')) as unknown
  if (typeof value !== 'object' || value === null || typeof (value as { op?: unknown }).op !== 'string') return undefined
  return value as OpRequest
}

/**
 * A writable whose every write becomes one frame on the socket (split below the frame limit);
 * writes complete when the socket has taken them, so a slow client slows the writer. For a
 * client's stderr that is a terminal it looks like one, so progress bars draw there.
 */
function frameStream(socket: Socket, type: FrameType, tty?: CliRequest): Writable {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (socket.destroyed) return callback(gone())
      let last = true
      for (let at = 0; at < chunk.length; at += MAX_FRAME) last = socket.write(encodeFrame(type, chunk.subarray(at, at + MAX_FRAME)))
      if (last) return callback()
      const settle = (): void => {
        socket.off('drain', settle)
        socket.off('close', settle)
        callback(socket.destroyed ? gone() : undefined)
      }
      socket.on('drain', settle)
      socket.on('close', settle)
    },
  })
  stream.on('error', () => {}) // the writer learns of it through its write callback
  if (tty?.stderrIsTTY === true) Object.assign(stream, { isTTY: true, columns: tty.columns })
  return stream
}
