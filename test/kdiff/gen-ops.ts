import type { Rng } from '../model/prng.js'
import type { EntryType, FsUnderTest } from './fsut.js'
import { childPath } from './look.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, renameat2Available } from './renameat2.js'
import { O_APPEND, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, type Op, type WriteData } from './ops.js'

/**
 * Random operations over the tree the reference side shows now: mostly on paths that exist,
 * sometimes on missing or impossible ones, so that errno outcomes are exercised too.
 */

export interface PathEntry { path: string; type: EntryType }

/** Every path of the tree (readdir only, no stat), sorted so the choice depends on the seed alone. */
export async function listPaths(fs: FsUnderTest): Promise<PathEntry[]> {
  const out: PathEntry[] = [{ path: '/', type: 'dir' }]
  for (let i = 0; i < out.length; i++) {
    if (out[i].type !== 'dir') continue
    const names = (await fs.readdir(out[i].path)).sort((a, b) => (a.name < b.name ? -1 : 1))
    for (const d of names) out.push({ path: childPath(out[i].path, d.name), type: d.type })
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1))
}

const NEW_NAMES = ['a', 'b', 'c', 'f', 'g', 'n', 'm']
const FILE_MODES = [0o644, 0o600, 0o755, 0o2755, 0o4755, 0o777, 0o640]
const DIR_MODES = [0o755, 0o700, 0o2775, 0o1777, 0o777]
const IDS = [0, 0, 1000, 1001, 65534]
const XATTRS = ['user.a', 'user.b', 'user.c']
const CHUNK = 64 * 1024

const OPEN_FLAGS = [
  [O_WRONLY | O_CREAT | O_TRUNC, 5], [O_WRONLY | O_CREAT | O_EXCL, 3], [O_RDWR | O_CREAT, 3], [O_WRONLY | O_APPEND | O_CREAT, 2],
  [O_WRONLY | O_APPEND, 2], [O_RDWR, 5], [O_WRONLY | O_TRUNC, 2], [O_RDONLY | O_TRUNC, 1], [O_RDONLY, 1],
] as const

const SLOTS = 3
const HELD_FLAGS = [[O_RDONLY, 3], [O_RDWR, 3], [O_WRONLY, 1], [O_RDWR | O_APPEND, 1], [O_RDWR | O_CREAT, 1]] as const

export class OpGen {
  private view: PathEntry[] = []
  /** What each slot of held files was last opened on (it may have moved since): for sizes. */
  private readonly slotPaths = new Map<number, string>()
  /** Who opened each slot's file. */
  private readonly slotCallers = new Map<number, number>()
  constructor(private readonly rng: Rng, private readonly ref: FsUnderTest) {}

  async next(): Promise<Op> {
    this.view = await listPaths(this.ref)
    const op = await this.body()
    let as: number = this.rng.weighted([[0, 6], [1, 2], [2, 2]] as const)
    // a held file is used by whoever opened it: a Strata handle keeps its opener's credentials
    if (op.k === 'hopen') this.slotCallers.set(op.slot, as)
    else if ('slot' in op) as = this.slotCallers.get(op.slot) ?? as
    return as === 0 ? op : { ...op, as }
  }

  private async body(): Promise<Op> {
    const r = this.rng
    const k = r.weighted([
      ['open', 22], ['truncate', 5], ['unlink', 7], ['rmdir', 5], ['mkdir', 7], ['rename', 12], ['link', 4],
      ['symlink', 4], ['chmod', 4], ['chown', 4], ['utimes', 2], ['setxattr', 5], ['removexattr', 3],
      ['stat', 4], ['read', 5], ['readdir', 3], ['readlink', 1], ['getxattr', 2],
      ['hopen', 5], ['hwrite', 4], ['hread', 4], ['hstat', 2], ['hclose', 1],
    ] as const)
    switch (k) {
      case 'open': {
        const flags = r.weighted(OPEN_FLAGS)
        const path = flags & O_CREAT ? this.toCreate() : this.existing(0.7)
        const canWrite = (flags & 3) !== O_RDONLY && r.chance(0.8)
        return { k, path, flags, mode: r.pick(FILE_MODES), ...(canWrite ? { write: await this.writeData(path) } : {}) }
      }
      case 'truncate': {
        const path = this.existing(0.9)
        const size = await this.sizeOf(path)
        return { k, path, len: r.pick([0, Math.floor(size / 2), size + r.range(1, 5000), r.range(0, 200), this.nearMiddle(size)]) }
      }
      case 'unlink': return { k, path: this.existing(0.6) }
      case 'rmdir': return { k, path: this.existing(0.1) }
      case 'mkdir': return { k, path: this.toCreate(), mode: r.pick(DIR_MODES) }
      case 'rename': {
        const from = this.existing(0.35)
        const to = r.chance(0.05) ? from : r.chance(0.45) ? this.existing(0.5) : this.toCreate()
        const flags = renameat2Available ? r.weighted([[0, 8], [RENAME_NOREPLACE, 1], [RENAME_EXCHANGE, 1]] as const) : 0
        return { k, from, to, flags }
      }
      case 'link': return { k, from: this.existing(0.8), to: this.toCreate() }
      case 'symlink': return { k, target: r.weighted([[r.pick(NEW_NAMES), 3], [`${r.pick(NEW_NAMES)}/${r.pick(NEW_NAMES)}`, 2], ['.', 1]] as const), path: this.toCreate() }
      case 'chmod': return { k, path: this.existing(0.6), mode: r.pick([...FILE_MODES, ...DIR_MODES, 0o000, 0o1755]) }
      case 'chown': return { k, path: this.existing(0.5), uid: r.pick(IDS), gid: r.pick(IDS), follow: r.chance(0.7) }
      case 'utimes': return { k, path: this.existing(0.6), atime: 1_600_000_000 + r.int(1e6), mtime: 1_600_000_000 + r.int(1e6), follow: r.chance(0.7) }
      case 'setxattr': return { k, path: this.existing(0.6), name: r.pick(XATTRS), value: r.pick(['', 'x', `v${r.int(1000)}`, 'a longer value '.repeat(4)]) }
      case 'removexattr': return { k, path: this.existing(0.6), name: r.pick(XATTRS) }
      case 'stat': return { k, path: this.existing(0.5, true), follow: r.chance(0.5) }
      case 'read': {
        const path = this.existing(0.9)
        const size = await this.sizeOf(path)
        return { k, path, pos: r.pick([0, this.nearMiddle(size), r.int(size + 1), Math.max(0, size - 100)]), len: r.pick([1, 100, 5000, CHUNK + 10]) }
      }
      case 'readdir': return { k, path: this.existing(0.1, true) }
      case 'readlink': return { k, path: this.existing(0.3) }
      case 'getxattr': return { k, path: this.existing(0.6, true), name: r.pick(XATTRS) }
      case 'hopen': {
        const slot = r.int(SLOTS)
        const flags = r.weighted(HELD_FLAGS)
        const path = flags & O_CREAT ? this.toCreate() : this.existing(1)
        this.slotPaths.set(slot, path)
        return { k, slot, path, flags, mode: r.pick(FILE_MODES) }
      }
      case 'hwrite': {
        const slot = r.int(SLOTS)
        return { k, slot, write: await this.writeData(this.slotPaths.get(slot) ?? '/') }
      }
      case 'hread': {
        const slot = r.int(SLOTS)
        const size = await this.sizeOf(this.slotPaths.get(slot) ?? '/')
        return { k, slot, pos: r.pick([0, this.nearMiddle(size), r.int(size + 1)]), len: r.pick([1, 100, 5000, CHUNK + 10]) }
      }
      case 'hstat': case 'hclose': return { k, slot: r.int(SLOTS) }
    }
  }

  /** An existing path (files with probability `fileBias`, otherwise any type), or now and then a bad one. */
  private existing(fileBias: number, rootToo = false): string {
    const r = this.rng
    if (r.chance(0.12)) return this.bad()
    const all = this.view.filter((e) => rootToo || e.path !== '/')
    const files = all.filter((e) => e.type === 'file')
    const pool = files.length > 0 && r.chance(fileBias) ? files : all
    return pool.length > 0 ? r.pick(pool).path : this.fresh()
  }

  /** Where something is to be made: mostly a new name, sometimes one that exists or a bad path. */
  private toCreate(): string {
    const r = this.rng
    return r.weighted([[() => this.fresh(), 55], [() => this.existing(0.4), 30], [() => this.bad(), 15]] as const)()
  }

  /** A name in an existing dir (it may happen to exist). */
  private fresh(): string {
    const dirs = this.view.filter((e) => e.type === 'dir')
    return childPath(this.rng.pick(dirs).path, this.rng.pick(NEW_NAMES))
  }

  /** A path that cannot be resolved as asked: under a non-dir, under a missing dir, or with a trailing slash. */
  private bad(): string {
    const r = this.rng
    const nonDirs = this.view.filter((e) => e.type !== 'dir')
    const any = this.view.filter((e) => e.path !== '/')
    return r.weighted([
      [() => `${r.pick(nonDirs).path}/${r.pick(NEW_NAMES)}`, nonDirs.length > 0 ? 3 : 0],
      [() => `/nope/${r.pick(NEW_NAMES)}`, 2],
      [() => `${r.pick(any).path}/`, any.length > 0 ? 2 : 0],
      [() => `${this.fresh()}/`, 1],
    ] as const)()
  }

  private async sizeOf(path: string): Promise<number> {
    try {
      return Number((await this.ref.lstat(path)).size)
    } catch {
      return 0
    }
  }

  /** Around the middle of the file, across a chunk boundary now and then. */
  private nearMiddle(size: number): number {
    const mid = Math.floor(size / 2)
    return this.rng.chance(0.5) ? Math.max(0, mid + this.rng.range(-5000, 5000)) : Math.max(0, Math.floor(mid / CHUNK) * CHUNK - this.rng.range(0, 20))
  }

  private async writeData(path: string): Promise<WriteData> {
    const r = this.rng
    const size = await this.sizeOf(path)
    const pos = r.weighted([[0, 3], [r.int(size + 1), 3], [size, 2], [size + r.range(1, 100000), 1], [this.nearMiddle(size), 3]] as const)
    const len = r.weighted([[r.range(1, 100), 4], [r.range(100, 5000), 3], [r.range(5000, 70000), 2], [r.range(70000, 140000), 1]] as const)
    return { pos, len, seed: r.next() }
  }
}
