import { FsError, type SnapshotFs } from '../../engine/index.js'
import { describeStore } from './compare.js'
import { CALLERS } from './perm.js'
import type { FsModel } from './tree.js'
import { dataValue, hashOf, type DirEntryValue, type Kind, type Outcome, type Value } from './values.js'

/** One file-system operation of a run, as plain data: applied to the model and to the store alike. */
export type Op = OpBody & {
  /** Index in CALLERS of who runs it. */
  as: number
}

export type OpBody =
  | { k: 'writeFile'; path: string; data: Buffer; mode: number; flag: 'w' | 'wx' | 'a' }
  | { k: 'writeAt'; path: string; pos: number; data: Buffer }
  | { k: 'truncate'; path: string; len: number }
  | { k: 'readFile'; path: string }
  | { k: 'unlink'; path: string }
  | { k: 'mkdir'; path: string; mode: number }
  | { k: 'rmdir'; path: string }
  | { k: 'mknod'; path: string; kind: 'fifo' | 'file'; mode: number }
  /** Many empty files made (or removed) in one dir, to grow it past one page of the merged index. */
  | { k: 'bulk'; dir: string; remove: boolean; first: number; count: number }
  | { k: 'symlink'; target: string; path: string }
  | { k: 'readlink'; path: string }
  | { k: 'link'; from: string; to: string }
  | { k: 'rename'; from: string; to: string; flags: number }
  | { k: 'chmod'; path: string; mode: number }
  | { k: 'chown'; path: string; uid: number; gid: number; follow: boolean }
  | { k: 'utimes'; path: string; atime: bigint | null; mtime: bigint | null; follow: boolean }
  | { k: 'setxattr'; path: string; name: string; value: Buffer; flags: number; follow: boolean }
  | { k: 'removexattr'; path: string; name: string; follow: boolean }
  | { k: 'getxattr'; path: string; name: string; follow: boolean }
  | { k: 'listxattr'; path: string; follow: boolean }
  | { k: 'stat'; path: string; follow: boolean }
  | { k: 'readdir'; path: string }

const oct = (n: number): string => '0' + n.toString(8)
export const bytesLabel = (b: Uint8Array): string => `${b.length}B#${hashOf(b).slice(0, 6)}`
const time = (t: bigint | null): string => (t === null ? 'now' : `${t}n`)
const nf = (follow: boolean): string => (follow ? '' : ' nofollow')

/** One line per op, enough to read a failing sequence (the seed reproduces the data). */
export function describeOp(op: Op): string {
  return (op.as === 0 ? '' : `[uid ${CALLERS[op.as].uid}] `) + describeBody(op)
}

function describeBody(op: Op): string {
  switch (op.k) {
    case 'writeFile': return `writeFile ${op.path} ${bytesLabel(op.data)} mode=${oct(op.mode)} flag=${op.flag}`
    case 'writeAt': return `writeAt ${op.path} @${op.pos} ${bytesLabel(op.data)}`
    case 'truncate': return `truncate ${op.path} ${op.len}`
    case 'mkdir': return `mkdir ${op.path} ${oct(op.mode)}`
    case 'mknod': return `mknod ${op.kind} ${op.path} ${oct(op.mode)}`
    case 'bulk': return `bulk ${op.remove ? 'unlink' : 'mknod'} ${op.dir}/${bulkName(op.first)}..${bulkName(op.first + op.count - 1)}`
    case 'symlink': return `symlink ${op.target} <- ${op.path}`
    case 'link': return `link ${op.from} -> ${op.to}`
    case 'rename': return `rename ${op.from} -> ${op.to}${op.flags === 1 ? ' NOREPLACE' : op.flags === 2 ? ' EXCHANGE' : ''}`
    case 'chmod': return `chmod ${op.path} ${oct(op.mode)}`
    case 'chown': return `chown ${op.path} ${op.uid}:${op.gid}${nf(op.follow)}`
    case 'utimes': return `utimes ${op.path} a=${time(op.atime)} m=${time(op.mtime)}${nf(op.follow)}`
    case 'setxattr': return `setxattr ${op.path} ${op.name}=${bytesLabel(op.value)} flags=${op.flags}${nf(op.follow)}`
    case 'removexattr': case 'getxattr': return `${op.k} ${op.path} ${op.name}${nf(op.follow)}`
    case 'listxattr': case 'stat': return `${op.k} ${op.path}${nf(op.follow)}`
    default: return `${op.k} ${op.path}`
  }
}

/** Paths whose lstat should agree after the op (its names and their parents). */
export function touchedPaths(op: Op): string[] {
  const trim = (p: string): string => p.replace(/(.)\/+$/, '$1')
  const parent = (p: string): string => p.slice(0, Math.max(1, p.lastIndexOf('/')))
  const both = (p: string): string[] => [trim(p), parent(trim(p))]
  if (op.k === 'rename' || op.k === 'link') return [...both(op.from), ...both(op.to)]
  if (op.k === 'bulk') return [op.dir]
  return both(op.path)
}

export const bulkName = (i: number): string => `n${String(i).padStart(4, '0')}`
const bulkPaths = (op: Extract<Op, { k: 'bulk' }>): string[] =>
  Array.from({ length: op.count }, (_, i) => `${op.dir === '/' ? '' : op.dir}/${bulkName(op.first + i)}`)

/** A bulk op answers with the names that failed and why. */
function bulkValue(op: Extract<Op, { k: 'bulk' }>, outcomes: Outcome[]): Value {
  const failed = outcomes.flatMap((o, i) => (o.ok ? [] : [`${bulkName(op.first + i)}:${o.code}`]))
  return { t: 'names', v: failed }
}

function bulkOutcome(op: Extract<Op, { k: 'bulk' }>, apply: (path: string) => Outcome): Outcome {
  return { ok: true, value: bulkValue(op, bulkPaths(op).map(apply)) }
}

export const isReadOnlyOp = (op: Op): boolean => ['readFile', 'readlink', 'getxattr', 'listxattr', 'stat', 'readdir'].includes(op.k)

export function applyModel(m: FsModel, op: Op): Outcome {
  m.caller = CALLERS[op.as]
  switch (op.k) {
    case 'writeFile': return m.writeFile(op.path, op.data, op.mode, op.flag)
    case 'writeAt': return m.writeAt(op.path, op.pos, op.data)
    case 'truncate': return m.truncate(op.path, op.len)
    case 'readFile': return m.readFile(op.path)
    case 'unlink': return m.unlink(op.path)
    case 'mkdir': return m.mkdir(op.path, op.mode)
    case 'rmdir': return m.rmdir(op.path)
    case 'mknod': return m.mknod(op.path, op.kind, op.mode)
    case 'bulk': return bulkOutcome(op, (path) => (op.remove ? m.unlink(path) : m.mknod(path, 'file', 0o644)))
    case 'symlink': return m.symlink(op.target, op.path)
    case 'readlink': return m.readlink(op.path)
    case 'link': return m.link(op.from, op.to)
    case 'rename': return m.rename(op.from, op.to, op.flags)
    case 'chmod': return m.chmod(op.path, op.mode)
    case 'chown': return m.chown(op.path, op.uid, op.gid, op.follow)
    case 'utimes': return m.utimes(op.path, op.atime, op.mtime, op.follow)
    case 'setxattr': return m.setxattr(op.path, op.name, op.value, op.flags, op.follow)
    case 'removexattr': return m.removexattr(op.path, op.name, op.follow)
    case 'getxattr': return m.getxattr(op.path, op.name, op.follow)
    case 'listxattr': return m.listxattr(op.path, op.follow)
    case 'stat': return m.stat(op.path, op.follow)
    case 'readdir': return m.readdir(op.path)
  }
}

/** Runs `fn` on the store; an FsError becomes the errno outcome, anything else is a failure of its own. */
export async function storeOutcome(fn: () => Promise<Value | void>): Promise<Outcome> {
  try {
    const value = await fn()
    return value ? { ok: true, value } : { ok: true }
  } catch (err) {
    if (err instanceof FsError) return { ok: false, code: err.code }
    throw err
  }
}

/**
 * Runs `op` on `fs` (the caller's view). A stat's contents and xattrs are read through `rootFs`,
 * as the model describes an inode whole whoever asks.
 */
export function runStore(fs: SnapshotFs, op: Op, rootFs: SnapshotFs): Promise<Outcome> {
  return storeOutcome(async (): Promise<Value | void> => {
    switch (op.k) {
      case 'writeFile':
        return op.flag === 'a' ? fs.appendFile(op.path, op.data) : fs.writeFile(op.path, op.data, { mode: op.mode, flag: op.flag })
      case 'writeAt': {
        const h = await fs.open(op.path, 'r+')
        try {
          await h.write(op.data, 0, op.data.length, op.pos)
        } finally {
          await h.close()
        }
        return
      }
      case 'truncate': return fs.truncate(op.path, op.len)
      case 'readFile': return dataValue(await fs.readFile(op.path))
      case 'unlink': return fs.unlink(op.path)
      case 'mkdir': { await fs.mkdir(op.path, { mode: op.mode }); return }
      case 'rmdir': return fs.rmdir(op.path)
      case 'mknod': return fs.mknod(op.path, (op.kind === 'fifo' ? 0o010000 : 0o100000) | op.mode)
      case 'bulk': {
        const out: Outcome[] = []
        for (const path of bulkPaths(op)) out.push(await storeOutcome(() => (op.remove ? fs.unlink(path) : fs.mknod(path, 0o100644))))
        return bulkValue(op, out)
      }
      case 'symlink': return fs.symlink(op.target, op.path)
      case 'readlink': return { t: 'text', v: await fs.readlink(op.path) }
      case 'link': return fs.link(op.from, op.to)
      case 'rename': return fs.rename(op.from, op.to, op.flags)
      case 'chmod': return fs.chmod(op.path, op.mode)
      case 'chown': return op.follow ? fs.chown(op.path, op.uid, op.gid) : fs.lchown(op.path, op.uid, op.gid)
      case 'utimes': {
        const call = op.follow ? fs.utimes.bind(fs) : fs.lutimes.bind(fs)
        return call(op.path, op.atime, op.mtime)
      }
      case 'setxattr': return fs.setxattr(op.path, op.name, op.value, op.flags, { follow: op.follow })
      case 'removexattr': return fs.removexattr(op.path, op.name, { follow: op.follow })
      case 'getxattr': return { t: 'text', v: (await fs.getxattr(op.path, op.name, { follow: op.follow })).toString('hex') }
      case 'listxattr': return { t: 'names', v: (await fs.listxattr(op.path, { follow: op.follow })).sort() }
      case 'stat': {
        const st = op.follow ? await fs.stat(op.path) : await fs.lstat(op.path)
        return { t: 'stat', d: await describeStore(rootFs, op.path, st, op.follow) }
      }
      case 'readdir': {
        const entries: DirEntryValue[] = (await fs.readdir(op.path, { withFileTypes: true }))
          .map((e) => ({ name: e.name, type: (e.isFile() ? 'file' : e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'symlink' : 'fifo') as Kind, ino: e.ino }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        return { t: 'dir', entries }
      }
    }
  })
}
