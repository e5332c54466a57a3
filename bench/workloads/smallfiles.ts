/**
 * Workload 6, small files: on a writable mount over a small lower, create 10,000 files of 1 KiB
 * in 100 new dirs and sync, then delete them all and sync; the time of each half, and what the
 * write side holds after each.
 */
import { mkdirSync, readFileSync, readdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { KiB } from '../lib/storage.js'
import { openEngineStack, type EngineStack } from '../suite/engine.js'
import type { SystemRow, TableResult, Workload, WorkloadContext } from '../suite/types.js'
import { fileContent } from './layers.js'
import { CheckError, SYSTEM, engineParticipant, runRows, stackSystems, syncMount, unavailable, withMount, type Participant, type RepResult } from './stacks.js'

const NUMBER = 6
const DIRS = 100
const FILE_BYTES = KiB
const SEED = 6

/** The file operations of one system: host calls on a mount, or SnapshotFs calls for the engine. */
interface Ops {
  mkdir(path: string): Promise<void>
  write(path: string, data: Buffer): Promise<void>
  read(path: string): Promise<Buffer>
  list(path: string): Promise<string[]>
  unlink(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  /** Makes everything written so far durable. */
  sync(): Promise<void>
  /** Bytes the write side has gained since the mount. */
  growth(): Promise<number>
}

interface Plan {
  files: number
  perDir: number
  contents: Buffer[]
}

const dirOf = (d: number): string => `out/d${d}`
const fileOf = (plan: Plan, i: number): string => `${dirOf(Math.floor(i / plan.perDir))}/f${i}`

/** One repetition on fresh ops: timed create + sync, checks, timed delete + sync, checks. */
async function createDelete(system: string, ops: Ops, plan: Plan): Promise<RepResult> {
  let t0 = process.hrtime.bigint()
  for (let d = 0; d < DIRS; d++) await ops.mkdir(dirOf(d))
  for (let i = 0; i < plan.files; i++) await ops.write(fileOf(plan, i), plan.contents[i])
  await ops.sync()
  const createMs = Number(process.hrtime.bigint() - t0) / 1e6
  const created = await ops.growth()
  for (let d = 0; d < DIRS; d++) {
    const n = (await ops.list(dirOf(d))).length
    if (n !== plan.perDir) throw new CheckError(`${system}: ${dirOf(d)} lists ${n} files after the create, expected ${plan.perDir}`)
  }
  for (let i = 0; i < plan.files; i += 97) {
    if (!(await ops.read(fileOf(plan, i))).equals(plan.contents[i])) throw new CheckError(`${system}: ${fileOf(plan, i)} does not read back what was written`)
  }

  t0 = process.hrtime.bigint()
  for (let i = 0; i < plan.files; i++) await ops.unlink(fileOf(plan, i))
  for (let d = 0; d < DIRS; d++) await ops.rmdir(dirOf(d))
  await ops.sync()
  const deleteMs = Number(process.hrtime.bigint() - t0) / 1e6
  const left = await ops.list('out')
  if (left.join() !== '.keep') throw new CheckError(`${system}: out/ lists ${left.length} names after the delete (${left.slice(0, 3).join(', ')}…), expected only .keep`)
  return { create: { value: createMs, extra: { 'bytes added': created } }, delete: { value: deleteMs, extra: { 'bytes held after delete': await ops.growth() } } }
}

/** Host calls on a mount, from this process (the daemons are other processes). */
function mountOps(root: string, growth: () => Promise<number>): Ops {
  const p = (rel: string): string => join(root, rel)
  return {
    mkdir: async (x) => { mkdirSync(p(x)) },
    write: async (x, data) => { writeFileSync(p(x), data) },
    read: async (x) => readFileSync(p(x)),
    list: async (x) => readdirSync(p(x)),
    unlink: async (x) => { unlinkSync(p(x)) },
    rmdir: async (x) => { rmdirSync(p(x)) },
    sync: () => syncMount(root),
    growth,
  }
}

/** SnapshotFs calls on a fresh active snapshot; sync: every open file flushed, then LevelDB's log synced. */
async function engineOps(stack: EngineStack, key: string): Promise<Ops> {
  await stack.store.prepare(key, stack.snap)
  const before = await stack.diskBytes()
  const fs = stack.store.fs(key)
  const p = (rel: string): string => `/${rel}`
  return {
    mkdir: async (x) => { await fs.mkdir(p(x)) },
    write: (x, data) => fs.writeFile(p(x), data),
    read: (x) => fs.readFile(p(x)),
    list: (x) => fs.readdir(p(x)),
    unlink: (x) => fs.unlink(p(x)),
    rmdir: (x) => fs.rmdir(p(x)),
    sync: async () => {
      await stack.store.flushAll()
      await stack.store.db.syncLog()
    },
    growth: async () => (await stack.diskBytes()) - before,
  }
}

function tables(plan: Plan, rows: Record<string, SystemRow[]>): TableResult[] {
  const params = { files: plan.files, dirs: DIRS, fileBytes: FILE_BYTES }
  const base = { workload: NUMBER, unit: 'ms', higherIsBetter: false, baseline: SYSTEM.kernel, params }
  const how = [
    `A writable mount (fresh empty upper; for Strata's store a fresh active snapshot) over a lower holding README and out/.keep, one per repetition. Files are written from the bench process with writeFileSync (open O_CREAT|O_TRUNC, write 1 KiB of pseudo-random bytes, close), under ${DIRS} new dirs out/d<n>.`,
    "sync: `sync -f` (syncfs) of the mount, then of the filesystem holding the mount dir, upper dirs and stores: the kernel forwards syncfs to a FUSE daemon only for virtiofs, so on the FUSE rows it covers what the daemon has written to its upper or store by then (a FUSE file's data reaches Strata's store when the kernel releases the file, just after close() returns). Engine: SnapshotFs.writeFile per file, then store.flushAll() and a synced LevelDB write.",
  ]
  return [
    {
      ...base,
      id: 'smallfiles-create',
      title: `Create ${plan.files} files of 1 KiB in ${DIRS} new dirs, then sync`,
      rows: rows.create,
      notes: [...how, `Timed: the ${DIRS} mkdirs, the ${plan.files} files and the sync. Checked after: each dir lists ${plan.perDir} files, every 97th file reads back. Extra 'bytes added': growth of the upper dir (du) or of the store on disk, after the sync.`],
    },
    {
      ...base,
      id: 'smallfiles-delete',
      title: `Delete those ${plan.files} files and ${DIRS} dirs, then sync`,
      rows: rows.delete,
      notes: [...how, `Timed: ${plan.files} unlinks, ${DIRS} rmdirs and the sync, on the same mount right after the create. Checked after: out/ lists only .keep. Extra 'bytes held after delete': what the upper dir or the store has gained since the mount; a store's size on disk includes LevelDB's log, which keeps what was written until LevelDB compacts it.`],
    },
  ]
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  // Quick: 500, not 2,000: at 2,000 one repetition took 40 s here, most of it Strata's
  // directory-layer mount (about 5 ms a create), and the quick suite has ~25 s per workload.
  const files = ctx.quick ? 500 : 10000
  const plan: Plan = { files, perDir: files / DIRS, contents: Array.from({ length: files }, (_, i) => fileContent(SEED, i, FILE_BYTES)) }
  const lower = join(ctx.scratch, 'lower')
  await mkdir(join(lower, 'out'), { recursive: true })
  await writeFile(join(lower, 'README'), 'a small lower layer\n')
  await writeFile(join(lower, 'out', '.keep'), '')
  const { usable, skips } = stackSystems(ctx, 1, true)
  const participants: Participant[] = usable.map((s) => ({
    name: s.name,
    run: () => withMount(s, [lower], { writable: true }, (m) => createDelete(s.name, mountOps(m.root, () => m.growthBytes()), plan)),
  }))
  const engineSkip = unavailable(ctx, SYSTEM.engine)
  const engine = engineSkip === undefined ? await openEngineStack(ctx.scratch, [lower], ctx.log) : undefined
  try {
    if (engine) {
      participants.push(engineParticipant(engine, 'smallfiles', async (key) => createDelete(SYSTEM.engine, await engineOps(engine, key), plan)))
    } else skips.push({ name: SYSTEM.engine, skipped: engineSkip! })
    ctx.log(`smallfiles: ${files} files, ${participants.length} systems × ${ctx.reps} repetitions`)
    return tables(plan, await runRows(ctx, ['create', 'delete'], participants, skips))
  } finally {
    await engine?.close()
  }
}

export const smallfilesWorkload: Workload = { name: 'smallfiles', number: NUMBER, title: 'Create 10,000 small files and sync, then delete them', run }
