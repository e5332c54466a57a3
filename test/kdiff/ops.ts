import { constants } from 'node:fs'
import { createHash } from 'node:crypto'
import { patternBytes } from '../helpers.js'
import { ROOT, type Creds } from '../../engine/index.js'
import { typeOfMode, type FsUnderTest, type OpenFile, type StatLike } from './fsut.js'
import type { HeldFiles } from './held.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from './renameat2.js'

/** The operations applied to both sides, and what each one's outcome is. */

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND } = constants

/** Data written: `len` bytes of the pattern of `seed` (helpers.patternBytes). */
export interface WriteData { pos: number; len: number; seed: number }

/** Who an op runs as (Op.as): root, the owner of the files owned by 1000, a member of group 1000. */
export const CALLERS: Creds[] = [ROOT, { uid: 1000, gid: 1000, groups: [1000] }, { uid: 1001, gid: 1001, groups: [1001, 1000] }]

export type Op = OpBody & { as?: number }

type OpBody =
  /** open(2), then an optional pwrite, then close. */
  | { k: 'open'; path: string; flags: number; mode: number; write?: WriteData }
  | { k: 'truncate'; path: string; len: number }
  | { k: 'unlink'; path: string }
  | { k: 'rmdir'; path: string }
  | { k: 'mkdir'; path: string; mode: number }
  | { k: 'rename'; from: string; to: string; flags: number }
  | { k: 'link'; from: string; to: string }
  | { k: 'symlink'; target: string; path: string }
  | { k: 'chmod'; path: string; mode: number }
  | { k: 'chown'; path: string; uid: number; gid: number; follow: boolean }
  | { k: 'utimes'; path: string; atime: number; mtime: number; follow: boolean }
  | { k: 'setxattr'; path: string; name: string; value: string }
  | { k: 'removexattr'; path: string; name: string }
  // reads: their results are compared too
  | { k: 'stat'; path: string; follow: boolean }
  | { k: 'read'; path: string; pos: number; len: number }
  | { k: 'readdir'; path: string }
  | { k: 'readlink'; path: string }
  | { k: 'getxattr'; path: string; name: string }
  // on files held open across operations (held.ts)
  | { k: 'hopen'; slot: number; path: string; flags: number; mode: number }
  | { k: 'hwrite'; slot: number; write: WriteData }
  | { k: 'hread'; slot: number; pos: number; len: number }
  | { k: 'hstat'; slot: number }
  | { k: 'hclose'; slot: number }

/** Success (with a read's result as text) or the errno code. */
export type Outcome = { ok: true; value?: string } | { ok: false; code: string }

export const showOutcome = (o: Outcome): string => (o.ok ? (o.value === undefined ? 'success' : `success: ${o.value}`) : o.code)
export const sameOutcome = (a: Outcome, b: Outcome): boolean => showOutcome(a) === showOutcome(b)

export function flagNames(flags: number): string {
  const acc = flags & 3
  const parts = [acc === O_RDONLY ? 'O_RDONLY' : acc === O_WRONLY ? 'O_WRONLY' : 'O_RDWR']
  for (const [n, f] of [['O_CREAT', O_CREAT], ['O_EXCL', O_EXCL], ['O_TRUNC', O_TRUNC], ['O_APPEND', O_APPEND]] as const) if (flags & f) parts.push(n)
  return parts.join('|')
}

const oct = (m: number): string => `0${m.toString(8)}`

export function describeOp(op: Op): string {
  const who = op.as ? `as ${CALLERS[op.as].uid}: ` : ''
  return who + describeBody(op)
}

function describeBody(op: Op): string {
  switch (op.k) {
    case 'open': {
      const w = op.write ? `; pwrite ${op.write.len} bytes at ${op.write.pos} (pattern ${op.write.seed})` : ''
      return `open ${op.path} ${flagNames(op.flags)}${op.flags & O_CREAT ? ` ${oct(op.mode)}` : ''}${w}; close`
    }
    case 'truncate': return `truncate ${op.path} to ${op.len}`
    case 'mkdir': return `mkdir ${op.path} ${oct(op.mode)}`
    case 'rename': return `rename ${op.from} -> ${op.to}${op.flags & RENAME_NOREPLACE ? ' RENAME_NOREPLACE' : ''}${op.flags & RENAME_EXCHANGE ? ' RENAME_EXCHANGE' : ''}`
    case 'link': return `link ${op.from} -> ${op.to}`
    case 'symlink': return `symlink ${op.path} -> ${op.target}`
    case 'chmod': return `chmod ${op.path} ${oct(op.mode)}`
    case 'chown': return `${op.follow ? 'chown' : 'lchown'} ${op.path} ${op.uid}:${op.gid}`
    case 'utimes': return `${op.follow ? 'utimes' : 'lutimes'} ${op.path} ${op.atime} ${op.mtime}`
    case 'setxattr': return `setxattr ${op.path} ${op.name}=${JSON.stringify(op.value)}`
    case 'removexattr': case 'getxattr': return `${op.k} ${op.path} ${op.name}`
    case 'stat': return `${op.follow ? 'stat' : 'lstat'} ${op.path}`
    case 'read': return `read ${op.path} ${op.len} bytes at ${op.pos}`
    case 'hopen': return `open ${op.path} ${flagNames(op.flags)}${op.flags & O_CREAT ? ` ${oct(op.mode)}` : ''}, held in slot ${op.slot}`
    case 'hwrite': return `pwrite ${op.write.len} bytes at ${op.write.pos} (pattern ${op.write.seed}) through slot ${op.slot}`
    case 'hread': return `pread ${op.len} bytes at ${op.pos} through slot ${op.slot}`
    case 'hstat': case 'hclose': return `${op.k === 'hstat' ? 'fstat' : 'close'} slot ${op.slot}`
    default: return `${op.k} ${op.path}`
  }
}

export const isReadOp = (op: Op): boolean => ['stat', 'read', 'readdir', 'readlink', 'getxattr', 'hread', 'hstat', 'hclose'].includes(op.k)

/** The paths an op may change, for a quick look at them on both sides right after it. */
export function touchedPaths(op: Op): string[] {
  if (isReadOp(op)) return []
  const paths = op.k === 'rename' || op.k === 'link' ? [op.from, op.to] : 'path' in op ? [op.path] : []
  const out = new Set<string>()
  for (const p of paths) {
    const clean = p.replace(/\/+$/, '') || '/'
    out.add(clean)
    out.add(clean.slice(0, clean.lastIndexOf('/')) || '/')
  }
  return [...out]
}

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex').slice(0, 16)

const describeStat = (st: StatLike): string => {
  const type = typeOfMode(st.mode)
  return `${type} ${oct(st.mode)} ${st.uid}:${st.gid}${type === 'dir' ? '' : ` ${st.size}B`}`
}

async function readAt(f: OpenFile, pos: number, len: number): Promise<string> {
  const buf = Buffer.alloc(len)
  const n = await f.read(buf, pos)
  return `${n} bytes ${sha1(buf.subarray(0, n))}`
}

async function run(fs: FsUnderTest, op: Op, held: HeldFiles): Promise<string | undefined> {
  switch (op.k) {
    case 'open': {
      const f = await fs.open(op.path, op.flags, op.mode)
      try {
        if (op.write) await f.write(patternBytes(op.write.len, op.write.seed), op.write.pos)
      } finally {
        await f.close()
      }
      return undefined
    }
    case 'truncate': return void (await fs.truncate(op.path, op.len))
    case 'unlink': return void (await fs.unlink(op.path))
    case 'rmdir': return void (await fs.rmdir(op.path))
    case 'mkdir': return void (await fs.mkdir(op.path, op.mode))
    case 'rename': return void (await fs.rename(op.from, op.to, op.flags))
    case 'link': return void (await fs.link(op.from, op.to))
    case 'symlink': return void (await fs.symlink(op.target, op.path))
    case 'chmod': return void (await fs.chmod(op.path, op.mode))
    case 'chown': return void (await fs.chown(op.path, op.uid, op.gid, op.follow))
    case 'utimes': return void (await fs.utimes(op.path, op.atime, op.mtime, op.follow))
    case 'setxattr': return void (await fs.setxattr(op.path, op.name, Buffer.from(op.value)))
    case 'removexattr': return void (await fs.removexattr(op.path, op.name))
    case 'stat': return describeStat(await (op.follow ? fs.stat(op.path) : fs.lstat(op.path)))
    case 'read': {
      const f = await fs.open(op.path, O_RDONLY, 0)
      try {
        return await readAt(f, op.pos, op.len)
      } finally {
        await f.close()
      }
    }
    case 'readdir': return (await fs.readdir(op.path)).map((d) => `${d.name}:${d.type}`).sort().join(' ')
    case 'readlink': return fs.readlink(op.path)
    case 'getxattr': return JSON.stringify((await fs.getxattr(op.path, op.name)).toString('latin1'))
    case 'hopen': return void (await held.open(op.slot, fs, op.path, op.flags, op.mode))
    case 'hwrite': return void (await held.get(op.slot).write(patternBytes(op.write.len, op.write.seed), op.write.pos))
    case 'hread': return readAt(held.get(op.slot), op.pos, op.len)
    case 'hstat': return describeStat(await held.get(op.slot).stat())
    case 'hclose': return void (await held.close(op.slot))
  }
}

/** Runs `op` (`held`: this side's open files); an error with an errno code is an outcome, anything else a bug of the side. */
export async function applyOp(fs: FsUnderTest, op: Op, held: HeldFiles): Promise<Outcome> {
  try {
    const value = await fs.as(CALLERS[op.as ?? 0], (f) => run(f, op, held))
    return value === undefined ? { ok: true } : { ok: true, value }
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return { ok: false, code }
    throw err
  }
}

export { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND }
