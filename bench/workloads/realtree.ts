/**
 * Workload 10, a real tree: on a writable mount over the suite's lower data, `tar -xf` of the
 * host's /usr/include and sync, then find + sha256sum of every file just written, then `rm -rf`
 * of the tree and sync. What people do in a read-write mount, with real names and sizes.
 */
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCmd } from '../lib/proc.js'
import type { StackMount, SystemRow, TableResult, Workload, WorkloadContext } from '../suite/types.js'
import { CheckError, SYSTEM, runRows, stackSystems, syncMount, withMount, type Participant, type RepResult } from './stacks.js'

const NUMBER = 10
const SOURCE_PARENT = '/usr'
const SOURCE_DIR = 'include'
/** --quick: the first members of the tree in path order, so a repetition stays a few seconds on the slowest mount. */
const QUICK_MEMBERS = 500

/** The tarball and what reading its tree back must give. */
interface Source {
  tarball: string
  members: number
  /** Regular files, their bytes, and `sha256sum` lines (digest and path), sorted. */
  files: number
  bytes: number
  digests: string[]
}

/** Every path under `rel` (relative to `parent`), parents before children, in byte order. */
function pathsUnder(parent: string, rel: string): string[] {
  const out = [rel]
  const entries = readdirSync(join(parent, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries) {
    const child = `${rel}/${e.name}`
    if (e.isDirectory()) out.push(...pathsUnder(parent, child))
    else out.push(child)
  }
  return out
}

/** `sha256sum` of every regular file of the tree under `root`, run there; the lines sorted. */
async function digestTree(root: string): Promise<string[]> {
  const r = await runCmd('sh', ['-c', `find ${SOURCE_DIR} -type f -print0 | xargs -0 -r sha256sum`], { cwd: root })
  return r.stdout.split('\n').filter(Boolean).sort()
}

/** Sum of the sizes of the tree's regular files under `root` (GNU find's %s). */
async function fileBytes(root: string): Promise<number> {
  const r = await runCmd('find', [SOURCE_DIR, '-type', 'f', '-printf', '%s\\n'], { cwd: root })
  return r.stdout.split('\n').filter(Boolean).reduce((n, s) => n + Number(s), 0)
}

/**
 * The tarball, made once per run from the host (not timed), and its reference digests, taken
 * by the same find + sha256sum over an extraction into scratch, so mount and reference are
 * compared line for line.
 */
async function makeSource(ctx: WorkloadContext): Promise<Source> {
  if (!existsSync(join(SOURCE_PARENT, SOURCE_DIR))) throw new Error(`${SOURCE_PARENT}/${SOURCE_DIR} does not exist on this host: the real-tree workload untars it (apt-get install libc6-dev)`)
  const tarball = join(ctx.scratch, 'tree.tar')
  let members: number
  if (ctx.quick) {
    const list = pathsUnder(SOURCE_PARENT, SOURCE_DIR).slice(0, QUICK_MEMBERS)
    const listFile = join(ctx.scratch, 'members')
    await writeFile(listFile, list.join('\n') + '\n')
    await runCmd('tar', ['-C', SOURCE_PARENT, '--no-recursion', '-T', listFile, '-cf', tarball])
    members = list.length
  } else {
    await runCmd('tar', ['-C', SOURCE_PARENT, '-cf', tarball, SOURCE_DIR])
    members = (await runCmd('tar', ['-tf', tarball])).stdout.split('\n').filter(Boolean).length
  }
  const ref = join(ctx.scratch, 'ref')
  await mkdir(ref)
  try {
    await runCmd('tar', ['-xf', tarball], { cwd: ref })
    const digests = await digestTree(ref)
    return { tarball, members, files: digests.length, bytes: await fileBytes(ref), digests }
  } finally {
    await rm(ref, { recursive: true, force: true })
  }
}

const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6

/** One repetition on a fresh writable mount: timed untar + sync, read-back, rm -rf + sync, each checked. */
async function untarReadRemove(system: string, m: StackMount, src: Source, lowerNames: string[]): Promise<RepResult> {
  const root = m.root
  let t0 = process.hrtime.bigint()
  await runCmd('tar', ['-xf', src.tarball], { cwd: root })
  await syncMount(root)
  const untarMs = msSince(t0)
  const added = await m.growthBytes()

  t0 = process.hrtime.bigint()
  const got = await digestTree(root)
  const readMs = msSince(t0)
  // This listing is the untar's check too: a count or digest check before the read would warm
  // the caches the read-back is meant to find as the untar left them.
  if (got.length !== src.files) throw new CheckError(`${system}: ${got.length} files read back after the untar, the tarball holds ${src.files}`)
  const wrong = got.findIndex((line, i) => line !== src.digests[i])
  if (wrong >= 0) throw new CheckError(`${system}: read back "${got[wrong]}", the tarball holds "${src.digests[wrong]}"`)

  t0 = process.hrtime.bigint()
  await runCmd('rm', ['-rf', SOURCE_DIR], { cwd: root })
  await syncMount(root)
  const rmMs = msSince(t0)
  const left = readdirSync(root).sort()
  if (left.join('\n') !== lowerNames.join('\n')) throw new CheckError(`${system}: the mount lists ${left.join(', ')} after rm -rf, expected the lower's ${lowerNames.join(', ')}`)
  return {
    untar: { value: untarMs, extra: { 'bytes added': added } },
    read: { value: readMs },
    rm: { value: rmMs, extra: { 'bytes held after rm': await m.growthBytes() } },
  }
}

function tables(ctx: WorkloadContext, src: Source, rows: Record<string, SystemRow[]>): TableResult[] {
  const what = ctx.quick ? `the first ${src.members} members of ${SOURCE_PARENT}/${SOURCE_DIR} in path order` : `${SOURCE_PARENT}/${SOURCE_DIR}`
  const params = { tree: what, members: src.members, files: src.files, bytes: src.bytes }
  const base = { workload: NUMBER, unit: 'ms', higherIsBetter: false, baseline: SYSTEM.kernel, params }
  const how = [
    `A writable mount (fresh empty upper; for Strata's store a fresh active snapshot) over the suite's lower data, one per repetition. The tree: a tar of ${what} (${src.files} regular files), made once per run from this host and not timed.`,
    "sync: `sync -f` (syncfs) of the mount, then of the filesystem holding the mount dir, upper dirs and stores: the kernel forwards syncfs to a FUSE daemon only for virtiofs, so on the FUSE rows it covers what the daemon has written to its upper or store by then.",
    'The in-process engine has no row: tar and find need a file system to run in, which only a mount gives.',
  ]
  return [
    {
      ...base,
      id: 'realtree-untar',
      title: `tar -xf of a real tree (${src.files} files), then sync`,
      rows: rows.untar,
      notes: [...how, "Timed: `tar -xf` run in the mount (as root, so owners, modes and times are set as in the tarball) and the sync. Checked by the read-back that follows: the same file list and every file's digest. Extra 'bytes added': growth of the upper dir (du) or of the store on disk, after the sync."],
    },
    {
      ...base,
      id: 'realtree-read',
      title: 'find + sha256sum of every file just untarred',
      rows: rows.read,
      notes: [...how, '`find -type f -print0 | xargs -0 sha256sum` in the mount right after the untar, caches as the untar left them. Checked after: the sorted digest lines (digest and path) equal those of the same command over an extraction of the tarball into a plain dir.'],
    },
    {
      ...base,
      id: 'realtree-rm',
      title: 'rm -rf of that tree, then sync',
      rows: rows.rm,
      notes: [...how, "Timed: `rm -rf` of the tree and the sync, on the same mount right after the read-back. Checked after: the mount's root lists only the lower's names. Extra 'bytes held after rm': what the upper dir or the store has gained since the mount."],
    },
  ]
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const src = await makeSource(ctx)
  const lowers = [ctx.data.path]
  const lowerNames = readdirSync(ctx.data.path).sort()
  const { usable, skips } = stackSystems(ctx, 1, true)
  skips.push({ name: SYSTEM.engine, skipped: 'does not apply: tar and find need a mounted file system' })
  const participants: Participant[] = usable.map((s) => ({
    name: s.name,
    run: () => withMount(s, lowers, { writable: true }, (m) => untarReadRemove(s.name, m, src, lowerNames)),
  }))
  ctx.log(`realtree: ${src.files} files (${src.members} tar members), ${participants.length} systems × ${ctx.reps} repetitions`)
  return tables(ctx, src, await runRows(ctx, ['untar', 'read', 'rm'], participants, skips))
}

export const realtreeWorkload: Workload = { name: 'realtree', number: NUMBER, title: 'Untar a real tree and sync, read it back, rm -rf it', run }
