import { RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../engine/index.js'
import { CALLERS } from './perm.js'
import type { Rng } from './prng.js'
import type { Op, OpBody } from './ops.js'
import { ModelError, type FsModel } from './tree.js'
import type { MNode } from './values.js'

/**
 * Random operations, biased towards what finds bugs in a layered store: a small pool of names so
 * that creates, renames and removals keep colliding with names that lower layers hold; files
 * around the inline limit and across 64 KiB chunk boundaries; holes; symlinks in the middle of paths.
 */

export const CHUNK = 64 * 1024
/** Files stay below this, so a run stays fast while files still span several chunks. */
export const MAX_FILE = 5 * CHUNK + 4321

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'é', 'name-with-more-letters']
const FILE_MODES = [0o644, 0o600, 0o755, 0o666, 0o4755, 0o2755, 0o2644, 0o6711, 0o1644, 0o000, 0o777]
const DIR_MODES = [0o755, 0o700, 0o777, 0o1777, 0o2775, 0o4755, 0o6777, 0o555]
const IDS = [-1, 0, 0, 1000, 1001, 65534]
const XATTR_NAMES = ['user.a', 'user.b', 'user.a.longer.name', 'trusted.t', 'user.overlay.x']

type Pick = (n: MNode) => boolean
const isFile: Pick = (n) => n.kind === 'file'
const isDir: Pick = (n) => n.kind === 'dir'
const notDir: Pick = (n) => n.kind !== 'dir'

export class OpGen {
  constructor(readonly rng: Rng) {}

  // ---- paths ----

  /** The object a name shows after following symlinks (as root), or undefined when that fails. */
  private follow(m: FsModel, path: string): MNode | undefined {
    const caller = m.caller
    m.caller = CALLERS[0]
    try {
      return m.resolve(path, true)
    } catch (err) {
      if (err instanceof ModelError) return undefined
      throw err
    } finally {
      m.caller = caller
    }
  }

  /**
   * A path to an existing name by a random walk down the tree (through symlinks to dirs too), so
   * each directory gets its share however many names it holds. `want` judges the object at the
   * end, symlinks not followed unless `followLast`.
   */
  existing(m: FsModel, want?: Pick, opts: { root?: boolean; followLast?: boolean } = {}): string | undefined {
    for (let tries = 0; tries < 25; tries++) {
      let path = '/'
      let node: MNode | undefined = m.root
      for (let depth = 0; depth < 6; depth++) {
        const dir: MNode | undefined = node.kind === 'symlink' ? this.follow(m, path) : node
        if (!dir || dir.kind !== 'dir' || dir.entries.size === 0) break
        if ((depth > 0 || opts.root) && this.rng.chance(0.3)) break
        const name: string = this.rng.pick([...dir.entries.keys()])
        path = path === '/' ? `/${name}` : `${path}/${name}`
        node = dir.entries.get(name)!
      }
      if (path === '/' && !opts.root) continue
      const judged = opts.followLast ? this.follow(m, path) : node
      if (!want || (judged && want(judged))) return path
    }
    return undefined
  }

  /** A name in an existing dir (or a dir reached through a symlink); it may exist already. */
  fresh(m: FsModel): string {
    const dir = this.existing(m, isDir, { root: true, followLast: true }) ?? '/'
    const name = this.rng.pick(NAMES)
    return this.maybeSlash(dir === '/' ? `/${name}` : `${dir}/${name}`)
  }

  /** Now and then a trailing slash, which only a dir (or a symlink to one) may take. */
  private maybeSlash(path: string): string {
    return this.rng.chance(0.04) ? `${path}/` : path
  }

  /** A path that fails to resolve: under a non-dir or under a missing name (loops come from symlinks to themselves). */
  broken(m: FsModel): string {
    const file = this.existing(m, notDir)
    if (file && this.rng.chance(0.6)) return `${file}/${this.rng.pick(NAMES)}`
    return `/missing-${this.rng.pick(NAMES)}/${this.rng.pick(NAMES)}`
  }

  path(m: FsModel, want?: Pick, opts: { followLast?: boolean } = {}): string {
    const kind = this.rng.weighted([['existing', 60], ['fresh', 32], ['broken', 8]] as const)
    if (kind === 'existing') {
      const p = this.existing(m, want, opts)
      if (p) return this.maybeSlash(p)
    }
    return kind === 'broken' ? this.broken(m) : this.fresh(m)
  }

  // ---- data ----

  private size(): number {
    return this.rng.weighted([
      [this.rng.range(0, 64), 3],
      [this.rng.range(4000, 4200), 2],
      [this.rng.range(64, 9000), 2],
      [CHUNK + this.rng.range(-300, 300), 1],
      [this.rng.range(9000, 2 * CHUNK + 500), 2],
      [this.rng.range(2 * CHUNK, MAX_FILE - 1), 1],
    ])
  }

  data(len = this.size()): Buffer {
    const style = this.rng.weighted([['random', 4], ['byte', 2], ['zero', 1], ['text', 2]] as const)
    if (style === 'random') return this.rng.bytes(len)
    if (style === 'zero') return Buffer.alloc(len)
    if (style === 'byte') return Buffer.alloc(len, this.rng.range(1, 255))
    const word = `line ${this.rng.int(1000)} of a text file\n`
    return Buffer.from(word.repeat(Math.ceil(len / word.length)).slice(0, len))
  }

  /** A position to write at: inside, at or past the end (a hole), or straddling a chunk or inline boundary. */
  position(size: number): number {
    const boundary = CHUNK * this.rng.range(1, 4) - this.rng.range(0, 40)
    return Math.max(0, this.rng.weighted([
      [this.rng.range(0, size), 4],
      [size, 2],
      [size + this.rng.range(1, CHUNK + 5000), 2],
      [boundary, 3],
      [4096 - this.rng.range(0, 20), 1],
    ]))
  }

  /** Data to write at `pos`, cut so that the file stays below MAX_FILE. */
  dataAt(pos: number): Buffer {
    return this.data(Math.max(0, Math.min(this.size(), MAX_FILE - pos)))
  }

  length(size: number): number {
    return this.rng.weighted([
      [0, 1],
      [this.rng.range(0, size), 3],
      [size + this.rng.range(1, 5000), 1],
      [CHUNK * this.rng.range(1, 4) + this.rng.range(-10, 10), 2],
      [this.rng.range(4090, 4100), 1],
      [Math.min(MAX_FILE, size + this.rng.range(CHUNK, 2 * CHUNK)), 1],
    ])
  }

  time(): bigint | null {
    if (this.rng.chance(0.15)) return null
    const sec = this.rng.chance(0.1) ? -this.rng.range(1, 2_000_000_000) : this.rng.range(0, 4_000_000_000)
    return BigInt(sec) * 1_000_000_000n + BigInt(this.rng.int(1_000_000_000))
  }

  private symlinkTarget(m: FsModel, at: string): string {
    const kind = this.rng.weighted([['absolute', 4], ['name', 3], ['up', 2], ['dangling', 1], ['self', 1]] as const)
    if (kind === 'absolute') return this.existing(m) ?? '/'
    if (kind === 'name') return this.rng.pick(NAMES)
    if (kind === 'up') return `../${this.rng.pick(NAMES)}${this.rng.chance(0.3) ? '/' + this.rng.pick(NAMES) : ''}`
    if (kind === 'dangling') return `/nowhere/${this.rng.pick(NAMES)}`
    return at
  }

  // ---- operations ----

  /** Who runs an op: mostly root, often one of two users. */
  caller(): number {
    return this.rng.weighted([[0, 60], [1, 25], [2, 15]])
  }

  /** The next operation; names are created more while the tree is small and removed more while it is big. */
  next(m: FsModel, names: number): Op {
    const as = this.caller()
    return { ...this.body(m, names), as }
  }

  private body(m: FsModel, names: number): OpBody {
    const grow = names < 12 ? 3 : names > 70 ? 0.3 : 1
    const shrink = names > 70 ? 3 : 1
    const k = this.rng.weighted([
      ['writeFile', 10 * grow], ['writeAt', 10], ['append', 4], ['truncate', 6], ['readFile', 3],
      ['mkdir', 7 * grow], ['rmdir', 5 * shrink], ['unlink', 6 * shrink], ['rename', 12], ['link', 5],
      ['symlink', 4], ['readlink', 2], ['mknod', 1], ['chmod', 3], ['chown', 3], ['utimes', 4],
      ['setxattr', 4], ['removexattr', 2], ['getxattr', 1], ['listxattr', 1], ['stat', 3], ['readdir', 3],
      ['bulk', 0.6],
    ] as const)
    const r = this.rng
    switch (k) {
      case 'writeFile': return { k, path: this.path(m, isFile, { followLast: true }), data: this.data(), mode: r.pick(FILE_MODES), flag: r.chance(0.1) ? 'wx' : 'w' }
      case 'append': return { k: 'writeFile', path: this.path(m, isFile, { followLast: true }), data: this.data(r.range(0, 3000)), mode: 0o666, flag: 'a' }
      case 'writeAt': {
        const path = this.path(m, isFile, { followLast: true })
        const size = this.follow(m, path)?.data.length ?? 0
        const pos = this.position(size)
        return { k, path, pos, data: this.dataAt(pos) }
      }
      case 'truncate': {
        const path = this.path(m, isFile, { followLast: true })
        return { k, path, len: this.length(this.follow(m, path)?.data.length ?? 0) }
      }
      case 'readFile': return { k, path: this.path(m, isFile, { followLast: true }) }
      case 'mkdir': return { k, path: r.chance(0.85) ? this.fresh(m) : this.path(m), mode: r.pick(DIR_MODES) }
      case 'rmdir': return { k, path: this.path(m, isDir) }
      case 'unlink': return { k, path: this.path(m, notDir) }
      case 'mknod': return { k, path: this.fresh(m), kind: r.pick(['fifo', 'file'] as const), mode: r.pick([0o644, 0o600]) }
      case 'bulk': return this.bulk(m)
      case 'symlink': {
        const path = r.chance(0.85) ? this.fresh(m) : this.path(m)
        return { k, target: this.symlinkTarget(m, path), path }
      }
      case 'readlink': return { k, path: this.path(m, (n) => n.kind === 'symlink') }
      case 'link': return { k, from: this.path(m, notDir), to: r.chance(0.85) ? this.fresh(m) : this.path(m) }
      case 'rename': return this.rename(m)
      case 'chmod': return { k, path: this.path(m), mode: r.pick(r.chance(0.5) ? FILE_MODES : DIR_MODES) }
      case 'chown': return { k, path: this.path(m), uid: r.pick(IDS), gid: r.pick(IDS), follow: r.chance(0.7) }
      case 'utimes': return { k, path: this.existingOrAny(m), atime: this.time(), mtime: this.time(), follow: r.chance(0.7) }
      case 'setxattr': {
        const value = r.chance(0.1) ? Buffer.alloc(0) : r.bytes(r.chance(0.1) ? r.range(100, 3000) : r.range(1, 40))
        return { k, path: this.existingOrAny(m), name: r.pick(XATTR_NAMES), value, flags: r.weighted([[0, 6], [1, 2], [2, 2]]), follow: r.chance(0.8) }
      }
      case 'removexattr': case 'getxattr': return { k, path: this.existingOrAny(m), name: r.pick(XATTR_NAMES), follow: r.chance(0.8) }
      case 'listxattr': return { k, path: this.existingOrAny(m), follow: r.chance(0.8) }
      case 'stat': return { k, path: this.existingOrAny(m), follow: r.chance(0.6) }
      case 'readdir': return { k, path: this.existing(m, isDir, { root: true, followLast: true }) ?? this.path(m) }
    }
  }

  private existingOrAny(m: FsModel): string {
    return this.rng.chance(0.85) ? (this.existing(m, undefined, { root: this.rng.chance(0.1) }) ?? this.path(m)) : this.path(m)
  }

  /**
   * Grows a dir past one page of the merged index (1024 names) over a commit or two, or removes a
   * run of names from the biggest dir, so that later commits rewrite single pages of it.
   */
  private bulk(m: FsModel): OpBody {
    const r = this.rng
    const remove = r.chance(0.35)
    const dir = remove || r.chance(0.7) ? biggestDir(m) : (this.existing(m, isDir, { root: true }) ?? '/')
    return { k: 'bulk', dir, remove, first: r.range(0, 1000), count: remove ? r.range(50, 400) : r.range(400, 800) }
  }

  /** Renames over every kind of target: new names, same-kind and other-kind names, into itself, onto an ancestor. */
  private rename(m: FsModel): OpBody {
    const r = this.rng
    const from = r.chance(0.9) ? (this.existing(m) ?? this.path(m)) : this.path(m)
    const to = r.weighted<() => string>([
      [() => this.fresh(m), 5],
      [() => this.existing(m, (n) => n.kind === this.follow(m, from)?.kind) ?? this.fresh(m), 4],
      [() => this.existing(m) ?? this.fresh(m), 2],
      [() => `${from}/${r.pick(NAMES)}`, 1],
      [() => from.slice(0, Math.max(1, from.lastIndexOf('/'))), 1],
      [() => from, 1],
    ])()
    const flags = r.weighted([[0, 6], [RENAME_NOREPLACE, 2], [RENAME_EXCHANGE, 2]])
    return { k: 'rename', from, to, flags }
  }
}

function biggestDir(m: FsModel): string {
  let best = { path: '/', size: -1 }
  const visit = (path: string, dir: MNode): void => {
    if (dir.entries.size > best.size) best = { path, size: dir.entries.size }
    for (const [name, child] of dir.entries) if (child.kind === 'dir') visit(path === '/' ? `/${name}` : `${path}/${name}`, child)
  }
  visit('/', m.root)
  return best.path
}
