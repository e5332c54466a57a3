/**
 * Workload 11, a real build: on a writable mount whose lower layer is this project's tree with
 * its node_modules, `git clone` of the project (from a local repository, no network) and sync,
 * then a TypeScript compile of the clone with the compiler and type packages of the lower's
 * node_modules, and sync. What a CI job or a developer does in a throwaway overlay.
 */
import { existsSync, statSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { repoRoot } from '../lib/fusesystems.js'
import { runCmd } from '../lib/proc.js'
import type { StackMount, SystemRow, TableResult, Workload, WorkloadContext } from '../suite/types.js'
import { CheckError, SYSTEM, runRows, stackSystems, syncMount, withMount, type Participant, type RepResult } from './stacks.js'

const NUMBER = 11
/** The clone's dir in the mount's root, next to the lower's node_modules, where Node and tsc find them. */
const CLONE = 'clone'
/** --quick: the engine's sources only (tsc's fixed cost, loading the compiler and @types/node, stays) and one repetition. */
const QUICK_INCLUDE = ['engine/**/*.ts']
const QUICK_CONFIG = 'tsconfig.bench-quick.json'
const QUICK_REPS = 1

/** What every repetition clones and builds, made once per run. */
interface Project {
  /** The lower layer: the project's tree at `commit` and a copy of its node_modules. */
  lower: string
  /** A bare repository holding `commit` as its HEAD branch: what `git clone` fetches. */
  repo: string
  commit: string
  /** Tracked files of the commit, and the compile's inputs among them. */
  files: number
  sources: number
  /** The tsconfig the compile takes (relative to the clone), and the .js files it must emit. */
  config: string
  include: string[]
  outputs: string[]
  nodeModulesFiles: number
}

/** git as the suite runs it: root may work on a checkout that another user owns. */
const git = (args: string[], cwd?: string) => runCmd('git', ['-c', 'safe.directory=*', ...args], { cwd })

/** `dir/**\/*.ts` patterns of a tsconfig `include`, as path prefixes: the only form this workload reads. */
function includePrefixes(include: string[]): string[] {
  return include.map((p) => {
    const m = /^(.+)\/\*\*\/\*\.ts$/.exec(p)
    if (!m) throw new Error(`realbuild: tsconfig include pattern ${p} is not of the form dir/**/*.ts`)
    return `${m[1]}/`
  })
}

/**
 * The lower layer and the repository, from the checkout the suite runs in (not timed): the tree
 * of its HEAD commit (`git archive`, so no build output and no uncommitted change) plus a copy of
 * its node_modules, and a bare clone of that commit.
 */
async function makeProject(ctx: WorkloadContext): Promise<Project> {
  const root = repoRoot()
  if (!existsSync(join(root, 'node_modules', 'typescript'))) throw new Error(`realbuild: ${root}/node_modules has no typescript (npm install)`)
  const repo = join(ctx.scratch, 'project.git')
  await git(['init', '-q', '--bare', repo])
  await git(['fetch', '-q', '--no-tags', root, 'HEAD:refs/heads/bench'], repo).catch((err: Error) => {
    throw new Error(`realbuild: ${root} is not a git checkout with a commit: ${err.message}`)
  })
  await git(['symbolic-ref', 'HEAD', 'refs/heads/bench'], repo)
  const commit = (await git(['rev-parse', '--verify', 'HEAD^{commit}'], repo)).stdout.trim()

  const lower = join(ctx.scratch, 'lower')
  await mkdir(lower)
  await runCmd('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', repo, commit, lower])
  if (existsSync(join(lower, CLONE)) || existsSync(join(lower, 'node_modules'))) throw new Error(`realbuild: the project's tree has its own ${CLONE} or node_modules`)
  await runCmd('cp', ['-a', join(root, 'node_modules'), join(lower, 'node_modules')])
  const nodeModulesFiles = Number((await runCmd('sh', ['-c', 'find node_modules | wc -l'], { cwd: lower })).stdout.trim())

  const tracked = (await git(['ls-tree', '-r', '--name-only', '-z', commit], repo)).stdout.split('\0').filter(Boolean)
  const tsconfig = JSON.parse((await git(['show', `${commit}:tsconfig.json`], repo)).stdout) as { include?: string[]; compilerOptions?: { outDir?: string; rootDir?: string } }
  const outDir = tsconfig.compilerOptions?.outDir ?? 'dist'
  if ((tsconfig.compilerOptions?.rootDir ?? '.').replace(/^\.\/?/, '') !== '') throw new Error('realbuild: the tsconfig has a rootDir other than ".": the expected outputs would not be where this workload looks')
  const include = ctx.quick ? QUICK_INCLUDE : (tsconfig.include ?? [])
  const prefixes = includePrefixes(include)
  const sources = tracked.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts') && prefixes.some((x) => p.startsWith(x)))
  if (!sources.some((p) => p === 'engine/index.ts')) throw new Error('realbuild: no engine/index.ts among the compile\'s inputs')
  return {
    lower,
    repo,
    commit,
    files: tracked.length,
    sources: sources.length,
    config: ctx.quick ? QUICK_CONFIG : 'tsconfig.json',
    include,
    outputs: sources.map((p) => join(outDir, p.replace(/\.ts$/, '.js'))),
    nodeModulesFiles,
  }
}

const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6

/** One repetition on a fresh writable mount: timed clone + sync and compile + sync, each checked. */
async function cloneAndBuild(system: string, m: StackMount, p: Project): Promise<RepResult> {
  const clone = join(m.root, CLONE)
  let t0 = process.hrtime.bigint()
  await git(['clone', '-q', '--no-local', p.repo, CLONE], m.root)
  await syncMount(m.root)
  const cloneMs = msSince(t0)
  const got = (await git(['rev-parse', 'HEAD'], clone)).stdout.trim()
  if (got !== p.commit) throw new CheckError(`${system}: the clone's HEAD is ${got}, the repository's ${p.commit}`)
  if (p.config === QUICK_CONFIG) await writeFile(join(clone, QUICK_CONFIG), JSON.stringify({ extends: './tsconfig.json', include: p.include }) + '\n')

  t0 = process.hrtime.bigint()
  // A non-zero exit (a type error, a file it could not read or write) rejects: the row fails.
  await runCmd(process.execPath, [join(m.root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', p.config], { cwd: clone })
  await syncMount(m.root)
  const buildMs = msSince(t0)
  const added = await m.growthBytes()

  // Checked after the timing: every output there and not empty, and every tracked file of the
  // checkout hashed again (--really-refresh ignores the index's stat data) and equal to the commit.
  const missing = p.outputs.filter((o) => {
    const path = join(clone, o)
    return !existsSync(path) || statSync(path).size === 0
  })
  if (missing.length) throw new CheckError(`${system}: tsc exited 0 but ${missing.length} of ${p.outputs.length} outputs are missing or empty, e.g. ${missing[0]}`)
  await git(['update-index', '-q', '--really-refresh'], clone).catch(() => {})
  const changed = (await git(['diff', '--name-only', 'HEAD'], clone)).stdout.split('\n').filter(Boolean)
  if (changed.length) throw new CheckError(`${system}: the checkout differs from the commit in ${changed.length} file(s), e.g. ${changed[0]}`)
  return {
    clone: { value: cloneMs },
    build: { value: buildMs },
    total: { value: cloneMs + buildMs, extra: { 'bytes added': added } },
  }
}

function tables(ctx: WorkloadContext, p: Project, reps: number, rows: Record<string, SystemRow[]>): TableResult[] {
  const compile = ctx.quick ? `the sources under ${p.include.join(', ')} (${p.sources} files; a tsconfig extending the project's, written into the clone before the timing)` : `the whole project (${p.sources} files)`
  const params = { commit: p.commit.slice(0, 12), 'tracked files': p.files, 'compiled files': p.sources, 'node_modules entries': p.nodeModulesFiles, tsconfig: p.config, repetitions: reps }
  const base = { workload: NUMBER, unit: 'ms', higherIsBetter: false, baseline: SYSTEM.kernel, params }
  const how = [
    `A writable mount (fresh empty upper; for Strata's store a fresh active snapshot) over one lower layer, one mount per repetition. The lower: this project's tree at the commit (git archive, ${p.files} files) and a copy of its node_modules (${p.nodeModulesFiles} entries), made once per run and not timed.`,
    `The clone goes to ${CLONE}/ in the mount's root, next to the lower's node_modules, so Node and tsc resolve typescript and @types there.`,
    "sync: `sync -f` (syncfs) of the mount, then of the filesystem holding the mount dir, upper dirs and stores: the kernel forwards syncfs to a FUSE daemon only for virtiofs, so on the FUSE rows it covers what the daemon has written to its upper or store by then.",
    ...(ctx.quick ? [`--quick: ${reps} repetition${reps === 1 ? '' : 's'}, and the compile of ${compile}.`] : []),
    'The in-process engine has no row: git and tsc need a file system to run in, which only a mount gives.',
  ]
  return [
    {
      ...base,
      id: 'realbuild-clone',
      title: `git clone of this project (${p.files} files), then sync`,
      rows: rows.clone,
      notes: [...how, "Timed: `git clone --no-local` from a bare repository on the host (the pack protocol, as for a remote: pack written and indexed, then checked out) and the sync. Checked: the clone's HEAD is the commit, and after the build every tracked file is hashed again and equals the commit's (`git update-index --really-refresh`, `git diff HEAD`)."],
    },
    {
      ...base,
      id: 'realbuild-tsc',
      title: `tsc -p of the clone (${p.sources} files), then sync`,
      rows: rows.build,
      notes: [...how, `Timed: \`node node_modules/typescript/bin/tsc -p ${p.config}\` in the clone, compiling ${compile}, reading the compiler, the standard library and @types from the lower's node_modules and writing .js, .d.ts and .map files under the clone's dist/, and the sync. Checked: tsc exits 0 and every one of the ${p.outputs.length} .js files it must emit (dist/engine/index.js among them) is there and not empty.`],
    },
    {
      ...base,
      id: 'realbuild-total',
      title: 'git clone and tsc together, each followed by sync',
      rows: rows.total,
      notes: [...how, "The sum of the two tables above, per repetition. Extra 'bytes added': growth of the upper dir (du) or of the store's active snapshot, after the build's sync."],
    },
  ]
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const p = await makeProject(ctx)
  const lowers = [p.lower]
  const { usable, skips } = stackSystems(ctx, 1, true)
  skips.push({ name: SYSTEM.engine, skipped: 'does not apply: git and tsc need a mounted file system' })
  const participants: Participant[] = usable.map((s) => ({
    name: s.name,
    run: () => withMount(s, lowers, { writable: true }, (m) => cloneAndBuild(s.name, m, p)),
  }))
  const reps = ctx.quick ? Math.min(ctx.reps, QUICK_REPS) : ctx.reps
  ctx.log(`realbuild: clone of ${p.commit.slice(0, 12)} (${p.files} files), tsc of ${p.sources} files, ${participants.length} systems × ${reps} repetitions`)
  return tables(ctx, p, reps, await runRows({ ...ctx, reps }, ['clone', 'build', 'total'], participants, skips))
}

export const realbuildWorkload: Workload = { name: 'realbuild', number: NUMBER, title: 'git clone of this project and tsc of the clone, on a writable mount over its node_modules', run }
