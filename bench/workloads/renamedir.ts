/**
 * Workload 7, directory rename: rename(2) of a lower directory holding 1,000 files on a writable
 * mount. With redirect_dir=on the kernel (and Strata) record the move instead of copying the tree
 * up; fuse-overlayfs has no redirects and refuses with EXDEV, leaving the copy to `mv`.
 */
import { existsSync, readFileSync, readdirSync, renameSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { openEngineStack, type EngineStack } from '../suite/engine.js'
import type { TableResult, Workload, WorkloadContext } from '../suite/types.js'
import { fileContent } from './layers.js'
import { CheckError, SYSTEM, engineParticipant, runRows, stackSystems, unavailable, withMount, type Participant, type RepResult } from './stacks.js'

const NUMBER = 7
const FILES = 1000
const FILE_BYTES = 512
const SEED = 7
/** Every SAMPLE-th file's content is read back after the rename. */
const SAMPLE = 50

const names = Array.from({ length: FILES }, (_, i) => `f${i}`)

/** What the renamed tree must show: every name under dst, sampled contents, and no src. */
async function verify(system: string, list: () => Promise<string[]>, read: (name: string) => Promise<Buffer>, srcExists: () => Promise<boolean>): Promise<void> {
  const got = (await list()).sort()
  const want = [...names].sort()
  if (got.length !== want.length || got.some((n, i) => n !== want[i])) throw new CheckError(`${system}: dst lists ${got.length} names after the rename, expected the ${FILES} files of src`)
  for (let i = 0; i < FILES; i += SAMPLE) {
    if (!(await read(`f${i}`)).equals(fileContent(SEED, i, FILE_BYTES))) throw new CheckError(`${system}: dst/f${i} does not read back the content src/f${i} had`)
  }
  if (await srcExists()) throw new CheckError(`${system}: src still exists after the rename`)
}

/** rename(2) from this process: a synchronous call, blocking nothing that serves the mount. */
async function renameOnMount(system: string, root: string, growth: () => Promise<number>): Promise<RepResult> {
  const before = await growth()
  const [src, dst] = [join(root, 'src'), join(root, 'dst')]
  const t0 = process.hrtime.bigint()
  try {
    renameSync(src, dst)
  } catch (err) {
    // the error as `mv`'s rename(2) would get it, with the scratch path left out
    throw new Error((err as Error).message.split(`${root}/`).join(''))
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const added = (await growth()) - before
  await verify(system, async () => readdirSync(dst), async (n) => readFileSync(join(dst, n)), async () => existsSync(src))
  return { rename: { value: ms, extra: { 'bytes added': added } } }
}

/** SnapshotFs.rename on a fresh active snapshot of the stack (redirect_dir=on, the default). */
async function renameOnEngine(stack: EngineStack, key: string): Promise<RepResult> {
  await stack.store.prepare(key, stack.snap)
  const fs = stack.store.fs(key, { redirectDir: 'on' })
  // Opening the snapshot is the engine's mount: not part of the rename.
  await fs.stat('/')
  const before = await stack.diskBytes()
  const t0 = process.hrtime.bigint()
  await fs.rename('/src', '/dst')
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const added = (await stack.diskBytes()) - before
  const gone = async (): Promise<boolean> => fs.stat('/src').then(() => true, (err: { code?: string }) => err.code !== 'ENOENT')
  await verify(SYSTEM.engine, () => fs.readdir('/dst'), (n) => fs.readFile(`/dst/${n}`), gone)
  return { rename: { value: ms, extra: { 'bytes added': added } } }
}

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const lower = join(ctx.scratch, 'lower')
  await mkdir(join(lower, 'src'), { recursive: true })
  await mkdir(join(lower, 'keep'))
  for (let i = 0; i < FILES; i++) await writeFile(join(lower, 'src', `f${i}`), fileContent(SEED, i, FILE_BYTES))
  const { usable, skips } = stackSystems(ctx, 1, true)
  const participants: Participant[] = usable.map((s) => ({
    name: s.name,
    run: () => withMount(s, [lower], { writable: true, redirectDir: 'on' }, (m) => renameOnMount(s.name, m.root, () => m.growthBytes())),
  }))
  const engineSkip = unavailable(ctx, SYSTEM.engine)
  const engine = engineSkip === undefined ? await openEngineStack(ctx.scratch, [lower], ctx.log) : undefined
  try {
    if (engine) {
      participants.push(engineParticipant(engine, 'renamedir', (key) => renameOnEngine(engine, key)))
    } else skips.push({ name: SYSTEM.engine, skipped: engineSkip! })
    ctx.log(`renamedir: ${FILES} files, ${participants.length} systems × ${ctx.reps} repetitions`)
    const rows = await runRows(ctx, ['rename'], participants, skips)
    return [{
      id: 'renamedir',
      workload: NUMBER,
      title: `rename(2) of a lower directory holding ${FILES} files`,
      unit: 'ms',
      higherIsBetter: false,
      baseline: SYSTEM.kernel,
      rows: rows.rename,
      params: { files: FILES, fileBytes: FILE_BYTES, redirectDir: 'on' },
      notes: [
        `A writable mount (fresh empty upper; for Strata's store a fresh active snapshot) over a lower holding src/ with ${FILES} files of ${FILE_BYTES} bytes; kernel overlayfs and Strata's directory mount with redirect_dir=on, Strata's store records a renamed dir in its layer. One mount per repetition; rename(src, dst) is its first operation.`,
        'Timed: one renameSync from the bench process. In-process because the call takes less than a child process (mv) needs to start; the bench process is none of the daemons, so a synchronous call blocks nothing that serves the mount. Engine: SnapshotFs.rename on a fresh active snapshot, opened (a stat of \'/\') before the timed call.',
        `Checked after: dst lists the ${FILES} names, every ${SAMPLE}th file reads back its content, src is gone. fuse-overlayfs has no redirect_dir and fails the rename with EXDEV (mv would then copy the tree): that is its row's error, with no sample.`,
        "Extra 'bytes added': growth of the upper dir (du) or of the store on disk across the rename.",
      ],
    }]
  } finally {
    await engine?.close()
  }
}

export const renamedirWorkload: Workload = { name: 'renamedir', number: NUMBER, title: 'Rename a lower directory of 1,000 files', run }
