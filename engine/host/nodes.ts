import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { link, open, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { T } from '../overlay/node.js'
import { fsError, isCode } from '../errors.js'

/**
 * Making host objects that Node has no call for, and setting host times exactly. Node has no
 * mknod(2): devices and fifos are made by the `mknod` program, and a socket by binding a unix
 * socket server and keeping a hard link to its file after the server closes.
 */

/**
 * Seconds for Node's utimes that land on the exact microsecond: libuv truncates the double to
 * whole microseconds, so aim at the middle of the microsecond and rounding cannot fall below it.
 * Times before 1970 become the epoch, since Node replaces a negative time by the current one.
 */
export function utimeSeconds(ns: bigint): number {
  if (ns < 0n) return 0
  const sec = ns / 1000000000n
  const usec = (ns % 1000000000n) / 1000n
  return Number(sec) + (Number(usec) * 1000 + 500) / 1e9
}

/** Linux's dev_t layout (glibc's gnu_dev_major/minor). */
export function splitDev(rdev: number): [major: bigint, minor: bigint] {
  const r = BigInt(rdev)
  const major = ((r >> 8n) & 0xfffn) | ((r >> 32n) & 0xfffff000n)
  const minor = (r & 0xffn) | ((r >> 12n) & 0xffffff00n)
  return [major, minor]
}

/** The dev_t of a major and minor number (glibc's gnu_dev_makedev), the inverse of splitDev. */
export function makeDev(major: number, minor: number): number {
  const [ma, mi] = [BigInt(major), BigInt(minor)]
  return Number(((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn))
}

/** A device or fifo of type `type` (T.CHR, T.BLK, T.FIFO). */
export function makeNode(path: string, type: number, rdev: number): Promise<void> {
  const args = ['--', path]
  if (type === T.FIFO) args.push('p')
  else args.push(type === T.CHR ? 'c' : 'b', ...splitDev(rdev).map(String))
  return new Promise((ok, fail) => {
    execFile('mknod', args, (err, _stdout, stderr) => {
      if (!err) return ok()
      if (isCode(err, 'ENOENT')) return fail(fsError('ENOTSUP', 'mknod', path, 'the mknod program is not installed; devices and fifos need it'))
      const msg = String(stderr).trim() || err.message
      fail(fsError(/not permitted/i.test(msg) ? 'EPERM' : /exists/i.test(msg) ? 'EEXIST' : 'EIO', 'mknod', path, msg))
    })
  })
}

/**
 * A unix socket file: a server binds a temporary name in the same dir, the final name is linked
 * to it, and closing the server removes the temporary one. Long dirs are reached through
 * /proc/self/fd, as a socket address holds at most 107 bytes.
 */
export async function makeSocket(path: string): Promise<void> {
  const dir = dirname(path)
  const tmpName = `.strata-socket-${randomBytes(6).toString('hex')}`
  const dirHandle = Buffer.byteLength(join(dir, tmpName)) > 100 ? await open(dir, 'r') : undefined
  const bindPath = dirHandle ? `/proc/self/fd/${dirHandle.fd}/${tmpName}` : join(dir, tmpName)
  const server = createServer()
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail)
      server.listen(bindPath, ok)
    })
    await link(join(dir, tmpName), path)
  } finally {
    if (server.listening) await new Promise<void>((ok) => server.close(() => ok()))
    await rm(join(dir, tmpName), { force: true })
    await dirHandle?.close()
  }
}
