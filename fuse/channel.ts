import { closeSync, constants, openSync, writeSync, writev } from 'node:fs'
import { spawn } from 'node:child_process'
import { FsError } from '../engine/index.js'
import { deviceBacking, type BackingDevice } from './passthrough.js'
import { EAGAIN, EINTR, ENOENT, libc } from './libc.js'

/** Requests read from the device; the handler returns the buffer with `recycle` once it is done with it. */
export type RequestHandler = (buf: Buffer, length: number, recycle: () => void) => void

export interface ChannelOptions {
  mountpoint: string
  fsname: string
  readOnly: boolean
  /** Mount flags for the kernel's VFS, passed to mount(8) as given. */
  vfs: string[]
  /** Largest WRITE payload the session will negotiate; read buffers hold one request of that size. */
  maxWrite: number
}

/**
 * How long the serving thread keeps polling the device after the last request or reply before it
 * sleeps (in ms). A caller doing one thing after another (tar, rm -r, a build) sends its next request
 * within microseconds of a reply: taken by a poll on this thread, it costs no thread wake-up,
 * where a read sleeping in libuv's pool costs two (the pool thread, then this one), which made
 * up half of a request's round trip.
 */
const POLL_MS = 0.1
/** Requests taken in one turn of the event loop before the replies and I/O of the taken ones run. */
const BATCH = 16
/** Read buffers kept for reuse. */
const SPARE_BUFFERS = 8

const errnoCode = (err: unknown): string | undefined => (err as { code?: string }).code

/** Runs a command; resolves with its exit status and what it printed on stderr. */
function run(cmd: string, args: string[], extraFd?: number): Promise<{ status: number; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe']
    if (extraFd !== undefined) stdio.push(extraFd)
    const child = spawn(cmd, args, { stdio })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (status) => resolveRun({ status: status ?? 1, stderr: stderr.trim() }))
  })
}

/**
 * The connection to the kernel for one mount: /dev/fuse opened by this process and mounted with
 * mount(8), the descriptor handed over as its fd 3 (the kernel takes the connection from the
 * mounting process's descriptor table, which then shares the open file with us).
 */
export class FuseChannel {
  private readonly pool: Buffer[] = []
  private handler?: RequestHandler
  private endedResolve!: () => void
  private isEnded = false
  private lastActivity = 0
  /** Settles when the kernel ends the session (unmount or abort). */
  readonly ended: Promise<void> = new Promise((r) => { this.endedResolve = r })

  private constructor(private readonly fd: number, readonly mountpoint: string, private readonly bufSize: number) {}

  static async open(opts: ChannelOptions): Promise<FuseChannel> {
    let fd: number
    try {
      // non-blocking: the serving thread polls the device and never sleeps in a read (see POLL_MS)
      fd = openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK)
    } catch (err) {
      throw new FsError(errnoCode(err) === 'ENOENT' ? 'ENODEV' : 'EACCES', 'mount', opts.mountpoint, `cannot open /dev/fuse (${errnoCode(err)}): FUSE mounts need the fuse module and root`)
    }
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    const options = [`fd=3`, `rootmode=40000`, `user_id=${uid}`, `group_id=${gid}`, 'default_permissions', 'allow_other']
    if (opts.readOnly) options.push('ro')
    options.push(...opts.vfs)
    // -i: never hand over to a mount.fuse.strata helper (which would come back here)
    const r = await run('mount', ['-i', '-t', 'fuse.strata', '-o', options.join(','), opts.fsname, opts.mountpoint], fd).catch((err: unknown) => ({ status: -1, stderr: String(err) }))
    if (r.status !== 0) {
      closeSync(fd)
      throw new FsError(r.stderr.includes('ermission') ? 'EPERM' : 'EINVAL', 'mount', opts.mountpoint, `mount failed: ${r.stderr || `status ${r.status}`}`)
    }
    return new FuseChannel(fd, opts.mountpoint, opts.maxWrite + 4096)
  }

  /** Starts taking requests. */
  start(handler: RequestHandler): void {
    this.handler = handler
    this.sleep()
  }

  /** Until POLL_MS has passed without a request or reply: take what is waiting, let it run, come back. */
  private readonly poll = (): void => {
    if (this.isEnded) return
    if (this.take()) this.lastActivity = performance.now()
    if (this.isEnded) return
    if (performance.now() - this.lastActivity < POLL_MS) setImmediate(this.poll)
    else this.sleep()
  }

  /** Waits on libuv's pool for the next request, then polls again. */
  private sleep(): void {
    libc().pollIn(this.fd, () => {
      this.lastActivity = performance.now()
      this.poll()
    })
  }

  /** Hands the requests waiting on the device to the handler (up to BATCH); whether any was. */
  private take(): boolean {
    const { read, errno } = libc()
    let taken = 0
    while (taken < BATCH) {
      const buf = this.pool.pop() ?? Buffer.allocUnsafe(this.bufSize)
      const n = read(this.fd, buf, buf.length)
      if (n < 0) {
        this.pool.push(buf)
        const code = errno()
        // ENOENT: the request was interrupted before we took it
        if (code === ENOENT || code === EINTR) continue
        if (code !== EAGAIN) this.end() // ENODEV: unmounted or aborted
        break
      }
      taken++
      this.handler!(buf, n, () => { if (this.pool.length < SPARE_BUFFERS) this.pool.push(buf) })
    }
    return taken > 0
  }

  /** The device's registry of host files for FUSE passthrough. */
  backingDevice(): BackingDevice {
    return deviceBacking(this.fd, this.mountpoint)
  }

  /** Writes one reply. A reply to a request the kernel gave up on (ENOENT) is dropped, as the kernel expects. */
  send(msg: Buffer): void {
    if (this.isEnded) return
    this.lastActivity = performance.now()
    try {
      writeSync(this.fd, msg)
    } catch (err) {
      this.failed(err)
    }
  }

  /**
   * Writes a large reply (READ data) on libuv's pool, in pieces (writev): the kernel copies it
   * into the file's page cache there, so the copies of several replies run at once and beside the
   * next requests instead of one after another on the serving thread.
   */
  sendOnPool(parts: Buffer[]): void {
    if (this.isEnded) return
    this.lastActivity = performance.now()
    writev(this.fd, parts, null, (err) => {
      if (!err) return
      try {
        this.failed(err)
      } catch (unexpected) {
        process.stderr.write(`strata fuse: reply failed: ${(unexpected as Error).message}\n`)
      }
    })
  }

  private failed(err: unknown): void {
    const code = errnoCode(err)
    if (code === 'ENOENT') return
    if (code === 'ENODEV') { this.end(); return }
    throw err
  }

  private end(): void {
    if (this.isEnded) return
    this.isEnded = true
    // the descriptor is closed once, after the session
    setImmediate(() => {
      try { closeSync(this.fd) } catch { /* already gone */ }
      this.endedResolve()
    })
  }
}

/** umount(8) on a mountpoint: EBUSY while files are open there (unless lazy). */
export async function unmountPath(mountpoint: string, lazy = false): Promise<void> {
  const r = await run('umount', lazy ? ['-l', mountpoint] : [mountpoint])
  if (r.status === 0) return
  if (/not mounted/.test(r.stderr)) throw new FsError('EINVAL', 'umount', mountpoint, 'not mounted')
  throw new FsError(/busy/.test(r.stderr) ? 'EBUSY' : 'EINVAL', 'umount', mountpoint, r.stderr || `umount failed with status ${r.status}`)
}
