import { constants } from 'node:os'
import koffi from 'koffi'

/**
 * The few libc calls on /dev/fuse that Node has no binding for, made through koffi (prebuilt for
 * each platform, nothing compiled at install): ioctl for the device's registry of passthrough
 * files, a read that answers EAGAIN instead of throwing an Error on every empty poll of the
 * device, and a poll(2) that waits for the next request on one of libuv's pool threads.
 */
export interface Libc {
  /** ioctl(2), with koffi's type of its third argument first: -1 with `errno()` set on failure. */
  ioctl(fd: number, request: number, argType: unknown, arg: unknown): number
  /** read(2): the byte count, or -1 with `errno()` set. */
  read(fd: number, buf: Buffer, length: number): number
  /** poll(2) on one descriptor for input, on libuv's pool: calls back once it is readable or hung up. */
  pollIn(fd: number, done: () => void): void
  errno(): number
}

export const { EAGAIN, EINTR, ENOENT } = constants.errno

const POLLIN = 0x1

let loaded: Libc | undefined

export function libc(): Libc {
  if (loaded) return loaded
  const lib = koffi.load('libc.so.6')
  const read = lib.func('long read(int fd, void *buf, size_t count)')
  const poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)')
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)')
  loaded = {
    ioctl: (fd, request, argType, arg) => ioctl(fd, request, argType, arg) as number,
    read: (fd, buf, length) => Number(read(fd, buf, length)),
    pollIn(fd, done) {
      // struct pollfd { int fd; short events; short revents; }, kept alive by the closure until called back
      const pfd = Buffer.alloc(8)
      pfd.writeInt32LE(fd, 0)
      pfd.writeInt16LE(POLLIN, 4)
      poll.async(pfd, 1, -1, () => { pfd.fill(0); done() })
    },
    errno: () => koffi.errno(),
  }
  return loaded
}
