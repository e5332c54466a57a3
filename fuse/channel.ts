import { closeSync, openSync, read, writeSync, writev } from 'node:fs'
import { spawn } from 'node:child_process'
import { FsError } from '../engine/index.js'
import { deviceBacking, type BackingDevice } from './passthrough.js'

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

/** Blocking reads in libuv's pool kept waiting on the device: one answers while the next request is taken. */
const READERS = 2

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
  /** Settles when the kernel ends the session (unmount or abort). */
  readonly ended: Promise<void> = new Promise((r) => { this.endedResolve = r })

  private constructor(private readonly fd: number, readonly mountpoint: string, private readonly bufSize: number) {}

  static async open(opts: ChannelOptions): Promise<FuseChannel> {
    let fd: number
    try {
      fd = openSync('/dev/fuse', 'r+')
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
    for (let i = 0; i < READERS; i++) this.readNext()
  }

  private readNext(): void {
    if (this.isEnded) return
    const buf = this.pool.pop() ?? Buffer.allocUnsafe(this.bufSize)
    read(this.fd, buf, 0, buf.length, null, (err, n) => {
      if (err) {
        const code = errnoCode(err)
        // ENOENT: the request was interrupted before we took it; EINTR/EAGAIN: try again
        if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') {
          this.pool.push(buf)
          this.readNext()
          return
        }
        this.end()
        return
      }
      this.readNext()
      this.handler!(buf, n, () => { if (this.pool.length < READERS * 4) this.pool.push(buf) })
    })
  }

  /** The device's registry of host files for FUSE passthrough. */
  backingDevice(): BackingDevice {
    return deviceBacking(this.fd, this.mountpoint)
  }

  /** Writes one reply. A reply to a request the kernel gave up on (ENOENT) is dropped, as the kernel expects. */
  send(msg: Buffer): void {
    if (this.isEnded) return
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
    // both readers come back with ENODEV; the descriptor is closed once, after the session
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
