/** The systems of the snapshot workload: each keeps every round's snapshot of one host tree. */
import { readdir, readFile, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Store, type Dirent } from '../../engine/index.js'
import { SYSTEM, type SystemName } from '../suite/types.js'
import { diskUsageBytes, runCmd } from '../lib/proc.js'
import type { BuildTree } from './buildtree.js'

export interface SnapshotTool {
  name: SystemName
  /** Starts with nothing kept, in `dir` (created). */
  init(dir: string): Promise<void>
  /** Takes snapshot `round` (0: the first) of the tree as it is now. */
  snapshot(round: number): Promise<void>
  /** Throws unless snapshot `round` holds every file (and, where cheap, the content of `sample`). */
  check(round: number, sample: number[]): Promise<void>
  /** Ends the tool's use of its dir (closes the store) and returns the bytes the dir takes on disk. */
  finish(): Promise<number>
  /** Deletes everything it kept. */
  discard(): Promise<void>
}

/** How the ostree repo stores objects; see `ostreeTool`. */
export const OSTREE_MODE = 'bare-user'

const regularFiles = (tree: BuildTree): number => tree.files.length

function expectCount(tool: SystemName, round: number, got: number, tree: BuildTree): void {
  if (got !== regularFiles(tree)) throw new Error(`${tool}: snapshot ${round} holds ${got} files, expected ${regularFiles(tree)}`)
}

/** Base of a tool that keeps its output in one dir. */
abstract class DirTool implements SnapshotTool {
  abstract name: SystemName
  protected dir = ''
  constructor(protected readonly tree: BuildTree) {}
  async init(dir: string): Promise<void> {
    this.dir = dir
    await mkdir(dir, { recursive: true })
  }
  abstract snapshot(round: number): Promise<void>
  abstract check(round: number, sample: number[]): Promise<void>
  async finish(): Promise<number> { return diskUsageBytes(this.dir) }
  async discard(): Promise<void> {
    if (this.dir !== '') await rm(this.dir, { recursive: true, force: true }) // '' : never initialised
  }
}

/** The engine in-process: one store, each round a committed snapshot whose parent is the previous round. */
class StrataTool extends DirTool {
  name = SYSTEM.engine
  private store?: Store
  override async init(dir: string): Promise<void> {
    await super.init(dir)
    this.store = await Store.open({ path: join(dir, 'store') })
  }
  async snapshot(round: number): Promise<void> {
    await this.store!.snapshotDir(this.tree.root, { name: `r${round}`, ...(round > 0 ? { parent: `r${round - 1}` } : {}) })
  }
  async check(round: number, sample: number[]): Promise<void> {
    const fs = this.store!.fs(`r${round}`)
    let files = 0
    const walk = async (dir: string): Promise<void> => {
      for (const d of (await fs.readdir(dir, { withFileTypes: true })) as Dirent[]) {
        const p = `${dir === '/' ? '' : dir}/${d.name}`
        if (d.isDirectory()) await walk(p)
        else if (d.isFile()) files++
      }
    }
    await walk('/')
    expectCount(this.name, round, files, this.tree)
    for (const i of sample) {
      const rel = this.tree.files[i].path
      const [got, want] = await Promise.all([fs.readFile(`/${rel}`), readFile(join(this.tree.root, rel))])
      if (!Buffer.from(got).equals(want)) throw new Error(`${this.name}: /${rel} in snapshot ${round} differs from the host file`)
    }
  }
  override async finish(): Promise<number> {
    // Closed first: what LevelDB holds in memory is written out, as it would be for a user.
    await this.store?.close()
    this.store = undefined
    return super.finish()
  }
  override async discard(): Promise<void> {
    await this.store?.close()
    this.store = undefined
    await super.discard()
  }
}

/** A full copy per round. */
class CpTool extends DirTool {
  name = SYSTEM.cp
  async snapshot(round: number): Promise<void> {
    await runCmd('cp', ['-a', this.tree.root, join(this.dir, `r${round}`)])
  }
  async check(round: number, sample: number[]): Promise<void> {
    const copy = join(this.dir, `r${round}`)
    const entries = await readdir(copy, { recursive: true, withFileTypes: true })
    expectCount(this.name, round, entries.filter((e) => e.isFile()).length, this.tree)
    for (const i of sample) {
      const rel = this.tree.files[i].path
      const [got, want] = await Promise.all([readFile(join(copy, rel)), readFile(join(this.tree.root, rel))])
      if (!got.equals(want)) throw new Error(`${this.name}: ${rel} in copy ${round} differs from the host file`)
    }
  }
}

/** A new archive of the whole tree per round. */
class TarTool extends DirTool {
  name = SYSTEM.tar
  async snapshot(round: number): Promise<void> {
    await runCmd('tar', ['-cf', join(this.dir, `r${round}.tar`), '-C', this.tree.root, '.'])
  }
  async check(round: number): Promise<void> {
    const r = await runCmd('tar', ['-tf', join(this.dir, `r${round}.tar`)])
    // Directories are listed with a trailing slash.
    expectCount(this.name, round, r.stdout.split('\n').filter((l) => l !== '' && !l.endsWith('/')).length, this.tree)
  }
}

/**
 * One ostree repo, a commit per round on one branch (ostree makes the branch's head the parent).
 * bare-user: objects are stored as plain files, uncompressed like every other system here, and the
 * repo needs no root to own them; `archive` would zlib-compress every object, time spent in vain on
 * build outputs of random content, and is meant for serving a repo over HTTP, not for keeping builds.
 */
class OstreeTool extends DirTool {
  name = SYSTEM.ostree
  private get repo(): string { return join(this.dir, 'repo') }
  override async init(dir: string): Promise<void> {
    await super.init(dir)
    await runCmd('ostree', [`--repo=${this.repo}`, 'init', `--mode=${OSTREE_MODE}`])
  }
  async snapshot(round: number): Promise<void> {
    await runCmd('ostree', [`--repo=${this.repo}`, 'commit', '--branch=build', `--subject=round ${round}`, `--tree=dir=${this.tree.root}`])
  }
  async check(round: number): Promise<void> {
    const log = await runCmd('ostree', [`--repo=${this.repo}`, 'log', 'build'])
    const commits = (log.stdout.match(/^commit /gm) ?? []).length
    if (commits !== round + 1) throw new Error(`${this.name}: branch build has ${commits} commits after round ${round}, expected ${round + 1}`)
    const ls = await runCmd('ostree', [`--repo=${this.repo}`, 'ls', '-R', 'build'])
    // One line per entry, its mode first: '-' for a regular file.
    expectCount(this.name, round, ls.stdout.split('\n').filter((l) => l.startsWith('-')).length, this.tree)
  }
}

/** Every system of the workload, in table order. */
export function snapshotTools(tree: BuildTree): SnapshotTool[] {
  return [new StrataTool(tree), new CpTool(tree), new TarTool(tree), new OstreeTool(tree)]
}
