/**
 * Runs file-system steps as whoever starts it (a test starts it under setpriv as another user)
 * and prints, as JSON, what each step gave: a value, or the error code. Imports node's own
 * modules only: tests copy it next to the mounts, where any user can read it.
 *
 * argv[2]: JSON array of steps, each [op, ...args].
 */
import * as fs from 'node:fs'
import { execFileSync } from 'node:child_process'

export type Step = [string, ...(string | number)[]]
export type Outcome = { ok: true; value?: string } | { ok: false; code: string }

const { O_WRONLY, O_TRUNC, O_APPEND, O_CREAT, O_EXCL } = fs.constants

function pwrite(path: string, data: Buffer, flags: number): void {
  const fd = fs.openSync(path, flags)
  try {
    fs.writeSync(fd, data, 0, data.length, flags & O_APPEND ? null : 0)
  } finally {
    fs.closeSync(fd)
  }
}

/** Owner, group, mode and size: what a probe's result compares, never inode numbers or times. */
function describe(st: fs.Stats): string {
  return `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '-' : st.size}`
}

function step(op: string, a: (string | number)[]): string | undefined {
  const s = (i: number): string => String(a[i])
  const n = (i: number): number => Number(a[i])
  switch (op) {
    case 'read': return fs.readFileSync(s(0), 'utf8')
    case 'readdir': return fs.readdirSync(s(0)).sort().join(',')
    case 'stat': return describe(fs.statSync(s(0)))
    case 'lstat': return describe(fs.lstatSync(s(0)))
    case 'readlink': return fs.readlinkSync(s(0))
    case 'access': fs.accessSync(s(0), n(1)); return undefined
    // open without O_TRUNC and write at offset 0: the file keeps its length beyond what is written
    case 'pwrite': pwrite(s(0), Buffer.from(s(1)), O_WRONLY); return undefined
    case 'pwriteFile': pwrite(s(0), fs.readFileSync(s(1)), O_WRONLY); return undefined
    case 'append': pwrite(s(0), Buffer.from(s(1)), O_WRONLY | O_APPEND); return undefined
    case 'truncWrite': pwrite(s(0), Buffer.from(s(1)), O_WRONLY | O_TRUNC); return undefined
    case 'truncWriteFile': pwrite(s(0), fs.readFileSync(s(1)), O_WRONLY | O_TRUNC); return undefined
    case 'create': pwrite(s(0), Buffer.from(s(1)), O_WRONLY | O_CREAT | O_EXCL); return undefined
    case 'truncate': fs.truncateSync(s(0), n(1)); return undefined
    case 'ftruncate': {
      const fd = fs.openSync(s(0), O_WRONLY)
      try { fs.ftruncateSync(fd, n(1)) } finally { fs.closeSync(fd) }
      return undefined
    }
    case 'exec': return execFileSync(s(0), a.slice(1).map(String), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    case 'utimes': fs.utimesSync(s(0), n(1), n(2)); return undefined
    case 'chmod': fs.chmodSync(s(0), parseInt(s(1), 8)); return undefined
    case 'chown': fs.chownSync(s(0), n(1), n(2)); return undefined
    case 'lchown': fs.lchownSync(s(0), n(1), n(2)); return undefined
    case 'mkdir': fs.mkdirSync(s(0), { mode: a[1] === undefined ? 0o777 : parseInt(s(1), 8) }); return undefined
    case 'rmdir': fs.rmdirSync(s(0)); return undefined
    case 'unlink': fs.unlinkSync(s(0)); return undefined
    case 'rename': fs.renameSync(s(0), s(1)); return undefined
    case 'link': fs.linkSync(s(0), s(1)); return undefined
    case 'symlink': fs.symlinkSync(s(0), s(1)); return undefined
    default: throw new Error(`unknown step '${op}'`)
  }
}

function run([op, ...args]: Step): Outcome {
  try {
    const value = step(op, args)
    return value === undefined ? { ok: true } : { ok: true, value }
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number }
    // a program run by 'exec' that failed has a status, not an errno code
    return { ok: false, code: e.code ?? (e.status !== undefined ? `exit ${e.status}` : String(err)) }
  }
}

if (process.argv[2] !== undefined) {
  const steps = JSON.parse(process.argv[2]) as Step[]
  process.stdout.write(JSON.stringify(steps.map(run)))
}
