/**
 * Workload 4: `find` and `ls -lR` over the tree of small files (readdir of every dir; ls also
 * lstat-s every entry), warm. Output goes to a pipe and is only counted; the counts must agree.
 */
import { join } from 'node:path'
import { countOutputLines } from '../lib/fileio.js'
import { apiWalk, engineStackOr, type EngineStack } from '../suite/engine.js'
import { Rows, alternate, mountAll, rowNames, runnableStacks, table, unmountAll } from '../suite/rows.js'
import { SYSTEM, type SystemName, type TableResult, type Workload, type WorkloadContext } from '../suite/types.js'

interface Lister {
  name: SystemName
  /** Runs the listing; `lines` is what it printed (the engine: one per entry, plus the root, as find). */
  list(): Promise<{ ms: number; lines: number }>
}

const COMMANDS = {
  find: (dir: string) => countOutputLines('find', [dir]),
  ls: (dir: string) => countOutputLines('ls', ['-lR', '--color=never', dir]),
}
type Command = keyof typeof COMMANDS

async function run(ctx: WorkloadContext): Promise<TableResult[]> {
  const lowers = [ctx.data.path]
  const { dirs, filesPerDir } = ctx.data
  // find prints the root, every dir and every file.
  const findLines = 1 + dirs + dirs * filesPerDir
  const names = rowNames(ctx, true)
  const tables: Record<Command, Rows> = { find: new Rows(names), ls: new Rows(names) }
  const both = Object.values(tables)
  const stacks = runnableStacks(ctx, 1, false, both)
  const engine = await engineStackOr(ctx, lowers, both)
  const mounts = await mountAll(stacks, lowers, { writable: false }, both)
  try {
    for (const cmd of Object.keys(COMMANDS) as Command[]) {
      ctx.log(`metadata: ${cmd}`)
      const rows = tables[cmd]
      const listers: Lister[] = [...mounts].map(([name, m]) => ({ name, list: () => COMMANDS[cmd](join(m.root, 'tree')) }))
      if (engine) {
        const e = engine
        // find needs only readdir's entry types; ls -lR stats every entry.
        listers.unshift({ name: SYSTEM.engine, list: async () => { const w = await apiWalk(e.store.fs(e.snap), '/tree', cmd === 'ls'); return { ms: w.ms, lines: w.entries + 1 } } })
      }
      // One untimed run each warms the caches and gives the line counts to compare.
      const lines = new Map<SystemName, number>()
      for (const l of listers) {
        try {
          lines.set(l.name, (await l.list()).lines)
        } catch (err) {
          rows.fail(l.name, err)
        }
      }
      // The reference: find's count is known; ls -lR's is the plain dir's (else the most common).
      const ref = cmd === 'find' ? findLines : reference(lines)
      for (const [name, n] of lines) {
        const want = name === SYSTEM.engine ? findLines : ref
        if (n !== want) rows.fail(name, `${name === SYSTEM.engine ? 'the walk found' : `${cmd} printed`} ${n} lines; expected ${want}`)
      }
      await alternate(listers, ctx.reps, rows, async (l) => (await l.list()).ms)
    }
  } finally {
    await unmountAll(mounts, ctx.log)
    await engine?.close()
  }

  const files = dirs * filesPerDir
  const params = { files, dirs, 'files per dir': filesPerDir }
  const common = [
    `Over tree/ (${files} files of 100–2000 bytes in ${dirs} dirs), all systems mounted at once, after one untimed run each (warm); the command's output goes to a pipe and is only counted, and the line counts agreed across systems.`,
  ]
  return [
    table({ id: 'metadata-find', workload: 4, title: `find over ${files} files in ${dirs} dirs, warm`, unit: 'ms', higherIsBetter: false, rows: tables.find, params, notes: [...common, 'find reads every directory and uses the entry types readdir gives (no stat). Engine row: readdir of every directory through the API.'] }),
    table({ id: 'metadata-ls', workload: 4, title: `ls -lR over ${files} files in ${dirs} dirs, warm`, unit: 'ms', higherIsBetter: false, rows: tables.ls, params, notes: [...common, 'ls -lR reads every directory and lstat-s every entry. Engine row: readdir of every directory and lstat of every entry through the API (no output formatting).'] }),
  ]
}

/** The plain dir's count if it has one, else the most common count. */
function reference(lines: Map<SystemName, number>): number {
  const plain = lines.get(SYSTEM.plain)
  if (plain !== undefined) return plain
  const counts = new Map<number, number>()
  for (const [name, n] of lines) if (name !== SYSTEM.engine) counts.set(n, (counts.get(n) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? NaN
}

export const metadataWorkload: Workload = { name: 'metadata', number: 4, title: 'Metadata: find and ls -lR over a tree of small files', run }
