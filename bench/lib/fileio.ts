import { closeSync, fsyncSync, openSync, readSync, writeSync, constants } from 'node:fs'
import { spawn } from 'node:child_process'
import { Xxh64 } from '@node-rs/xxhash'
import { MiB } from './storage.js'

const READ_BUF = Buffer.allocUnsafe(MiB)

export interface ReadResult {
  bytes: number
  ms: number
  /** xxh64 of the content, when asked for (costs time, so never in a timed read). */
  digest?: string
}

/** Reads a whole file sequentially in 1 MiB reads, as `cat` or `cp` would. */
export async function sequentialRead(path: string, opts: { digest?: boolean } = {}): Promise<ReadResult> {
  const hasher = opts.digest ? new Xxh64() : undefined
  const t0 = process.hrtime.bigint()
  const fd = openSync(path, constants.O_RDONLY)
  let bytes = 0
  try {
    for (;;) {
      const n = readSync(fd, READ_BUF, 0, READ_BUF.length, null)
      if (n === 0) break
      hasher?.update(READ_BUF.subarray(0, n))
      bytes += n
    }
  } finally {
    closeSync(fd)
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  return { bytes, ms, digest: hasher?.digest().toString(16) }
}

export interface PwriteTiming {
  /** The whole sequence, milliseconds. */
  ms: number
  openMs: number
  writeMs: number
  fsyncMs: number
  closeMs: number
}

/** open(O_RDWR), pwrite at `offset`, fsync, close: a database-style small update of a big file. */
export function pwriteSynced(path: string, data: Buffer, offset: number): PwriteTiming {
  const t0 = process.hrtime.bigint()
  const fd = openSync(path, constants.O_RDWR)
  const t1 = process.hrtime.bigint()
  let t2 = t1
  let t3 = t1
  try {
    if (writeSync(fd, data, 0, data.length, offset) !== data.length) throw new Error(`short write to ${path}`)
    t2 = process.hrtime.bigint()
    fsyncSync(fd)
    t3 = process.hrtime.bigint()
  } finally {
    closeSync(fd)
  }
  const t4 = process.hrtime.bigint()
  const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6
  return { ms: ms(t0, t4), openMs: ms(t0, t1), writeMs: ms(t1, t2), fsyncMs: ms(t2, t3), closeMs: ms(t3, t4) }
}

/** Bytes at `offset` of a file. */
export function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY)
  try {
    const buf = Buffer.alloc(length)
    const n = readSync(fd, buf, 0, length, offset)
    return buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

/** Reads `length` bytes at each offset (pread), as a database or an mmap-less index would; the time of all of them. */
export function randomReads(path: string, offsets: number[], length: number): number {
  const buf = Buffer.allocUnsafe(length)
  const t0 = process.hrtime.bigint()
  const fd = openSync(path, constants.O_RDONLY)
  try {
    for (const off of offsets) {
      const n = readSync(fd, buf, 0, length, off)
      if (n !== length) throw new Error(`${path}: short read at ${off} (${n} of ${length} bytes)`)
    }
  } finally {
    closeSync(fd)
  }
  return Number(process.hrtime.bigint() - t0) / 1e6
}

/**
 * Times a command whose output goes to a pipe and is only counted (lines), so neither a terminal
 * nor a file's writes land in the time.
 */
export function countOutputLines(cmd: string, args: string[]): Promise<{ ms: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let lines = 0
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++
    })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      if (code !== 0) reject(new Error(`${[cmd, ...args].join(' ')} failed: ${err.trim()}`))
      else resolve({ ms, lines })
    })
  })
}

/**
 * Times `ls -lR DIR` (output discarded but counted): every directory listed and every entry
 * stat-ed, as a build tool or a backup scan would.
 */
export function lsRecursive(dir: string): Promise<{ ms: number; lines: number }> {
  return countOutputLines('ls', ['-lR', '--color=never', dir])
}
