import { setTimeout as sleep } from 'node:timers/promises'
import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import { Store, StoreError } from '../engine/index.js'
import { fsError, isCode } from '../engine/errors.js'
import { CliServer, type OpIo } from '../engine/cli/server.js'
import { connectServer, requestServer } from '../engine/cli/client.js'
import { ensureRuntimeDir, storeSocketPath } from '../engine/cli/runtime.js'
import type { ExitMessage, OpRequest } from '../engine/cli/wire.js'
import { mountFuse, type FuseMount } from './mount.js'
import { planMount } from './plan.js'
import { warmWritePath } from './warmup.js'
import { checkMountpoint } from './preflight.js'
import { daemonLogPath, mountSocketPath, removeRecord, writeRecord, type MountRecord } from './registry.js'
import { describeSource, mountNamespace, requestWritable, type DaemonConfig, type DaemonReport, type MountRequest } from './request.js'

/**
 * The process serving FUSE mounts. A store daemon holds one store, serves every mount of it and
 * every other CLI command on it (over the store's socket); a directory-stack mount without a
 * store gets a daemon of its own. A daemon exits once its last mount has ended, closing the
 * store first, so the next command can open it.
 */

/** How long one mount may take to unmount at shutdown before it is detached lazily. */
const UNMOUNT_WAIT_MS = 10_000
/** How long a store another process holds is waited for (a CLI command finishing). */
const STORE_WAIT_MS = 5000

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} strata daemon[${process.pid}]: ${message}\n`)
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))

interface Served {
  fuse: FuseMount
  record: MountRecord
  release: () => void
  /** Settles once the mount has ended and been cleaned up (and, for the last one, the daemon has finished). */
  ended: Promise<void>
}

class MountDaemon {
  private readonly mounts = new Map<string, Served>()
  private mounting = 0
  private finishing?: Promise<void>
  private shuttingDown = false
  private server?: CliServer
  private resolveDone!: () => void
  /** Settles when the daemon has let go of everything and may exit. */
  readonly done = new Promise<void>((resolve) => { this.resolveDone = resolve })

  constructor(private readonly store: Store | undefined, private readonly socketPath: string, private readonly logPath: string) {}

  /** Starts answering on the socket: CLI commands (store daemons) and mount/umount requests. */
  async listen(): Promise<void> {
    this.server = await CliServer.listen({
      store: this.store,
      socketPath: this.socketPath,
      ops: { mount: (req, io) => this.mountOp(req, io), umount: (req, io) => this.umountOp(req, io) },
      checkHostPath: (path) => this.checkHostPath(path, 'a command run by the store\'s mount daemon'),
      log,
    })
  }

  /**
   * Refuses a host path inside one of this daemon's mounts. The engine reads host trees partly
   * with synchronous calls, and a request of our own mount can only be answered by this event
   * loop: the daemon would wait on itself forever.
   */
  private checkHostPath(path: string, user: string): void {
    for (const mnt of this.mounts.keys()) {
      if (path === mnt || path.startsWith(mnt === '/' ? mnt : `${mnt}/`)) {
        throw fsError('EINVAL', 'open', path, `inside ${mnt}, which this daemon serves; ${user} cannot use it (copy it out, or unmount first)`)
      }
    }
  }

  async mount(req: MountRequest): Promise<MountRecord> {
    this.mounting++
    try {
      const mnt = req.mountpoint
      if (this.mounts.has(mnt)) throw fsError('EBUSY', 'mount', mnt, `already mounted; run 'strata umount ${mnt}' first`)
      const here = mountNamespace()
      if (req.namespace !== undefined && here !== undefined && req.namespace !== here) {
        throw fsError('EINVAL', 'mount', mnt, `the daemon serving this store (pid ${process.pid}) runs in another mount namespace, where this mount would not be seen; mount from that namespace, or unmount the store's mounts there first`)
      }
      await checkMountpoint(mnt)
      if (req.kind === 'dirs') {
        for (const dir of [...req.lowerdir, req.upperdir, req.workdir]) if (dir !== undefined) this.checkHostPath(dir, 'a layer of another of its mounts')
      }
      const plan = await planMount(req, this.store)
      let fuse: FuseMount
      try {
        fuse = await mountFuse({ mountpoint: mnt, fs: plan.fs, readOnly: plan.readOnly, cache: plan.cache, passthrough: plan.passthrough, fsname: plan.fsname, statfsPath: plan.statfsPath, vfs: req.vfs ?? [] })
      } catch (err) {
        plan.release()
        throw err
      }
      const record: MountRecord = {
        mountpoint: mnt,
        source: describeSource(req),
        mode: plan.readOnly ? 'ro' : 'rw',
        kind: req.kind,
        pid: process.pid,
        socket: this.socketPath,
        log: this.logPath,
        ...(this.store ? { store: this.store.path } : {}),
        started: new Date().toISOString(),
      }
      writeRecord(record)
      void fuse.ended.then(() => plan.unpin?.())
      const end = (): Promise<void> => this.ended(mnt)
      this.mounts.set(mnt, { fuse, record, release: plan.release, ended: fuse.closed.then(end, end) })
      log(`mounted ${record.source} at ${mnt} (${record.mode})`)
      return record
    } finally {
      this.mounting--
      this.finishIfIdle()
    }
  }

  /** Unmounts one mount; `served: false` when this daemon does not serve it. */
  async unmount(mountpoint: string, lazy: boolean): Promise<{ served: boolean; exiting: boolean; detached?: boolean }> {
    const served = this.mounts.get(mountpoint)
    if (!served) return { served: false, exiting: false }
    if (lazy) {
      // a lazy unmount ends the session only when the last file open there is closed
      const closedSoon = await Promise.race([served.fuse.unmount({ lazy: true }).then(() => true), sleep(2000).then(() => false)])
      if (!closedSoon) return { served: true, exiting: false, detached: true }
    } else {
      await served.fuse.unmount()
    }
    await served.ended
    return { served: true, exiting: this.finishing !== undefined }
  }

  /** SIGINT/SIGTERM: every mount unmounted (lazily if busy), the store flushed and closed. */
  async shutdown(signal: string): Promise<void> {
    if (this.shuttingDown) return
    this.shuttingDown = true
    log(`${signal}: unmounting ${this.mounts.size} mount(s)`)
    for (const [mnt, served] of [...this.mounts]) {
      try {
        await withTimeout(served.fuse.unmount(), UNMOUNT_WAIT_MS)
      } catch (err) {
        log(`unmount of ${mnt} failed (${message(err)}); detaching it lazily`)
        await withTimeout(served.fuse.unmount({ lazy: true }), UNMOUNT_WAIT_MS).catch((e: unknown) => log(`lazy unmount of ${mnt}: ${message(e)}`))
      }
    }
    // a mount still busy after its lazy unmount loses its daemon now: what uses it sees ENOTCONN
    for (const mnt of [...this.mounts.keys()]) this.forget(mnt)
    await this.finish()
  }

  private async ended(mnt: string): Promise<void> {
    if (!this.forget(mnt)) return
    log(`unmounted ${mnt}`)
    this.finishIfIdle()
    if (this.mounts.size === 0 && this.finishing) await this.finishing
  }

  /** Drops a mount's hold and record; false if it was not (or no longer) served. */
  private forget(mnt: string): boolean {
    const served = this.mounts.get(mnt)
    if (!served) return false
    this.mounts.delete(mnt)
    served.release()
    removeRecord(mnt, process.pid)
    return true
  }

  private finishIfIdle(): void {
    if (this.mounts.size === 0 && this.mounting === 0 && !this.shuttingDown) void this.finish()
  }

  /** Stops taking requests, lets the running commands end, closes the store. */
  finish(): Promise<void> {
    this.finishing ??= (async () => {
      await this.server?.stop()
      // the socket goes first: once the store is closed, a new daemon may listen at the same path
      this.server?.close()
      try {
        await this.store?.close()
      } catch (err) {
        log(`closing the store failed: ${message(err)}`)
      }
      log('no mounts left; exiting')
      this.resolveDone()
    })()
    return this.finishing
  }

  async drain(ms: number): Promise<void> {
    await this.server?.drain(ms)
  }

  private async mountOp(req: OpRequest, io: OpIo): Promise<ExitMessage> {
    try {
      const record = await this.mount(req.request as MountRequest)
      return { code: 0, result: record }
    } catch (err) {
      io.stderr.write(`strata: ${message(err)}\n`)
      return { code: 1 }
    }
  }

  private async umountOp(req: OpRequest, io: OpIo): Promise<ExitMessage> {
    try {
      const result = await this.unmount(String(req.mountpoint), req.lazy === true)
      return { code: result.served ? 0 : 1, result }
    } catch (err) {
      const hint = isCode(err, 'EBUSY') ? ` (files are open there; close them, or use 'strata umount -l')` : ''
      io.stderr.write(`strata: ${message(err)}${hint}\n`)
      return { code: 1, result: { served: true, exiting: false } }
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  return Promise.race([work, sleep(ms).then(() => Promise.reject(new Error(`no answer within ${ms / 1000} s`)))])
}

/**
 * The store, once whoever holds it lets go (a CLI command finishing, a daemon exiting); or, when
 * another daemon of the store started at the same moment and holds it, that daemon's answer to
 * this mount, which becomes this daemon's report.
 */
async function acquireStore(path: string, request: MountRequest): Promise<Store | DaemonReport> {
  const started = Date.now()
  for (;;) {
    try {
      return await Store.open({ path })
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'EBUSY')) throw err
      const probe = await connectServer(storeSocketPath(path))
      if (typeof probe !== 'string') {
        const answer = await forwardMount(probe, request)
        if (answer) return answer
      }
      if (Date.now() - started > STORE_WAIT_MS) throw err
      await sleep(100)
    }
  }
}

/** The running daemon's answer to the mount; undefined when it is exiting and mounts nothing more. */
async function forwardMount(socket: Socket, request: MountRequest): Promise<DaemonReport | undefined> {
  let errors = ''
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { errors += chunk.toString('utf8'); cb() } })
  const exit = await requestServer(socket, { op: 'mount', request }, { stdout: sink, stderr: sink })
  if (exit.retry === true) return undefined
  if (exit.code === 0) return { ready: true, record: exit.result }
  return { ready: false, error: errors.trim().replace(/^strata: /, '') || `mount failed (status ${exit.code})` }
}

function report(msg: DaemonReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve()
    process.send(msg, () => resolve())
  })
}

function receiveConfig(): Promise<DaemonConfig> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('the mount daemon is started by strata mount (it needs an IPC channel)'))
    process.once('message', (msg) => resolve(msg as DaemonConfig))
  })
}

async function main(): Promise<number> {
  process.chdir('/')
  // a failure in one request must not take every mount down with it
  process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? message(err)}`))
  process.on('unhandledRejection', (err) => log(`unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`))
  const config = await receiveConfig()
  const req = config.request
  ensureRuntimeDir()
  log(`starting: ${describeSource(req)} at ${req.mountpoint} (${requestWritable(req) ? 'rw' : 'ro'})${config.store ? `, store ${config.store}` : ''}`)

  let store: Store | undefined
  if (config.store !== undefined) {
    let acquired: Store | DaemonReport
    try {
      acquired = await acquireStore(config.store, req)
    } catch (err) {
      await report({ ready: false, error: message(err), code: (err as { code?: string }).code })
      return 1
    }
    if (!(acquired instanceof Store)) {
      await report(acquired)
      return acquired.ready ? 0 : 1
    }
    store = acquired
  }
  const socketPath = config.store !== undefined ? storeSocketPath(config.store) : mountSocketPath(req.mountpoint)
  const logPath = config.store !== undefined ? daemonLogPath({ store: config.store }) : daemonLogPath({ mountpoint: req.mountpoint })
  const daemon = new MountDaemon(store, socketPath, logPath)
  try {
    await daemon.listen()
  } catch (err) {
    await store?.close()
    await report({ ready: false, error: `cannot listen on ${socketPath}: ${message(err)}` })
    return 1
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void daemon.shutdown(signal))

  let status = 0
  try {
    const record = await daemon.mount(req)
    await report({ ready: true, record })
    if (requestWritable(req)) warmWritePath().catch((err: unknown) => log(`warm-up of the write path failed (harmless): ${message(err)}`))
  } catch (err) {
    log(`mount failed: ${message(err)}`)
    await report({ ready: false, error: message(err), code: (err as { code?: string }).code })
    status = 1
  }
  if (process.connected) process.disconnect()
  await daemon.done
  // the client of the last umount reads its answer before this process goes
  await daemon.drain(2000)
  return status
}

process.exit(await main())
