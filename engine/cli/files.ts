import { posix } from 'node:path'
import type { Command } from 'commander'
import type { SnapshotFs, Stats } from '../snapshotfs.js'
import { fsError } from '../errors.js'
import { printJson, printText, withStore } from './context.js'
import { cliIo } from './io.js'
import { modeString, octalMode, shortDate, table, typeName } from './format.js'

/** Bytes read from the store per write to stdout: large files stream instead of being buffered. */
const CAT_PIECE = 1024 * 1024

/** ls, cat, stat: reading the merged tree of a snapshot. */
export function registerFiles(program: Command): void {
  program
    .command('ls')
    .description("list a directory of a snapshot's merged tree, like ls -l")
    .argument('<snap>', 'snapshot')
    .argument('[path]', 'directory (or file) in the snapshot', '/')
    .action((snap: string, path: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const entries = await listEntries(store.fs(snap), path)
        if (json) return printJson(entries.map(entryJson))
        const rows = entries.map((e) => [modeString(e.st.mode), String(e.st.uid), String(e.st.gid), String(e.st.size), shortDate(e.st.mtimeMs), e.target === undefined ? e.name : `${e.name} -> ${e.target}`])
        printText(table(null, rows, new Set([1, 2, 3])))
      }),
    )

  program
    .command('cat')
    .description('write a file of a snapshot to stdout')
    .argument('<snap>', 'snapshot')
    .argument('<path>', 'file in the snapshot')
    .action((snap: string, path: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store) => {
        await catFile(store.fs(snap), path)
      }),
    )

  program
    .command('stat')
    .description('show the status of a path in a snapshot (without following a final symlink)')
    .argument('<snap>', 'snapshot')
    .argument('<path>', 'path in the snapshot')
    .action((snap: string, path: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const fs = store.fs(snap)
        const st = await fs.lstat(path)
        const target = st.isSymbolicLink() ? await fs.readlink(path) : undefined
        if (json) return printJson({ path, ...statJson(st), ...(target === undefined ? {} : { target }) })
        const time = (ms: number, ns: bigint): string => `${new Date(ms).toISOString()} (${ns} ns)`
        const rows: string[][] = [
          ['path', target === undefined ? path : `${path} -> ${target}`],
          ['type', typeName(st.mode)],
          ['mode', `${octalMode(st.mode)} (${modeString(st.mode)})`],
          ['ino', String(st.ino)],
          ['nlink', String(st.nlink)],
          ['uid', String(st.uid)],
          ['gid', String(st.gid)],
          ['size', String(st.size)],
          ['blocks', String(st.blocks)],
          ['rdev', String(st.rdev)],
          ['atime', time(st.atimeMs, st.atimeNs)],
          ['mtime', time(st.mtimeMs, st.mtimeNs)],
          ['ctime', time(st.ctimeMs, st.ctimeNs)],
        ]
        printText(table(null, rows.map(([k, v]) => [`${k}:`, v])))
      }),
    )
}

interface Entry {
  name: string
  st: Stats
  target?: string
}

/** The entries of a directory sorted by name, or the path alone when it is not a directory (as ls does). */
async function listEntries(fs: SnapshotFs, path: string): Promise<Entry[]> {
  const describe = async (name: string, full: string): Promise<Entry> => {
    const st = await fs.lstat(full)
    return st.isSymbolicLink() ? { name, st, target: await fs.readlink(full) } : { name, st }
  }
  const self = await fs.lstat(path)
  if (!self.isDirectory()) return [await describe(path, path)]
  const names = (await fs.readdir(path)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const entries: Entry[] = []
  for (const name of names) entries.push(await describe(name, posix.join(path, name)))
  return entries
}

function statJson(st: Stats): Record<string, unknown> {
  return {
    type: typeName(st.mode),
    mode: st.mode,
    modeString: modeString(st.mode),
    ino: st.ino,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    blocks: st.blocks,
    rdev: st.rdev,
    atimeMs: st.atimeMs,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    // bigint has no JSON form; a decimal string keeps the full nanosecond precision
    atimeNs: String(st.atimeNs),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
  }
}

function entryJson(e: Entry): Record<string, unknown> {
  return { name: e.name, ...statJson(e.st), ...(e.target === undefined ? {} : { target: e.target }) }
}

async function catFile(fs: SnapshotFs, path: string): Promise<void> {
  const handle = await fs.open(path, 'r')
  try {
    if ((await handle.stat()).isDirectory()) throw fsError('EISDIR', 'read', path)
    const piece = Buffer.allocUnsafe(CAT_PIECE)
    for (let position = 0; ; ) {
      const { bytesRead } = await handle.read(piece, 0, piece.length, position)
      if (bytesRead === 0) break
      position += bytesRead
      // a copy, because the next read reuses the buffer while stdout may still hold this one
      await writeStdout(Buffer.from(piece.subarray(0, bytesRead)))
    }
  } finally {
    await handle.close()
  }
}

/** Resolves once stdout has taken the bytes, so memory stays bounded by one piece. */
function writeStdout(data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    cliIo().stdout.write(data, (err) => (err ? reject(err) : resolve()))
  })
}
