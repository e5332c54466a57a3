import { execFileSync } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs'

export interface CmdResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export class CmdError extends Error {
  constructor(readonly cmd: string, readonly result: CmdResult) {
    super(`${cmd} failed (${result.signal ?? `exit ${result.code}`}): ${(result.stderr || result.stdout).trim().slice(-2000)}`)
  }
}

/**
 * Runs a command and resolves when it exits. It waits for the exit, not for its output pipes to
 * close: a mount command leaves a daemon behind that may still hold them.
 */
export function runCmd(cmd: string, args: string[], opts: { check?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CmdResult> {
  const { check = true, timeoutMs = 600_000 } = opts
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      // Output already written is in the pipe; give it one turn of the loop, then let go of it.
      setImmediate(() => {
        child.stdout.destroy()
        child.stderr.destroy()
        const result = { code, signal, stdout, stderr }
        if (check && code !== 0) reject(new CmdError([cmd, ...args].join(' '), result))
        else resolve(result)
      })
    })
  })
}

/** Empties the page cache, dentries and inodes, so the next read comes from the disk. */
export function dropCaches(): void {
  // dirty pages and inodes are not dropped: what was just written would stay cached
  execFileSync('sync')
  writeFileSync('/proc/sys/vm/drop_caches', '3')
}

/** Mount points currently in this process's mount namespace. */
export function mountPoints(): Set<string> {
  const out = new Set<string>()
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f[4]) out.add(f[4].replace(/\\040/g, ' '))
  }
  return out
}

/** The filesystem type of the mount at `path`, or undefined when nothing is mounted there. */
export function mountType(path: string): string | undefined {
  let type: string | undefined
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-')
    if (f[4] === path && dash > 0) type = f[dash + 1]
  }
  return type
}

/** Resident memory of a process, KiB: anonymous (its heap, caches) and file-backed (mmapped files). */
export interface Rss {
  total: number
  anon: number
  file: number
}

/** VmRSS, RssAnon and RssFile of /proc/PID/status. */
export function rssOf(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    if (!m) throw new Error(`no ${name} for pid ${pid}`)
    return Number(m[1])
  }
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') }
}

/** Page cache in use (Cached of /proc/meminfo), in KiB. */
export function pageCacheKiB(): number {
  const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))
  return Number(m?.[1] ?? NaN)
}

/** Processes holding /dev/fuse open, with their command lines: the FUSE daemons on this machine. */
export function fuseDaemons(): Array<{ pid: number; cmdline: string }> {
  const out: Array<{ pid: number; cmdline: string }> = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const fds = readdirSync(`/proc/${name}/fd`)
      if (!fds.some((fd) => safeReadlink(`/proc/${name}/fd/${fd}`) === '/dev/fuse')) continue
      out.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim() })
    } catch {
      // the process ended while we looked
    }
  }
  return out
}

function safeReadlink(p: string): string | undefined {
  try {
    return readlinkSync(p)
  } catch {
    return undefined
  }
}

/** Bytes a directory tree occupies on disk (du), so sparse and shared blocks count as they are. */
export async function diskUsageBytes(path: string): Promise<number> {
  const r = await runCmd('du', ['-s', '--block-size=1', path])
  return Number(r.stdout.split('\t')[0])
}

/** The block device holding `path` and its read-ahead: cold-read figures of every system depend on it. */
export function deviceReadAhead(path: string): { device: string; readAheadKiB: number | null } {
  const dev = statSync(path).dev
  const device = `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`
  for (const queue of [`/sys/dev/block/${device}/queue`, `/sys/dev/block/${device}/../queue`]) {
    try {
      return { device, readAheadKiB: Number(readFileSync(`${queue}/read_ahead_kb`, 'utf8').trim()) }
    } catch {
      // a partition keeps its queue in the parent disk's entry
    }
  }
  return { device, readAheadKiB: null }
}
