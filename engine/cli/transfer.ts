import { basename, resolve } from 'node:path'
import type { Command } from 'commander'
import type { Store } from '../store.js'
import type { SnapshotInfo } from '../types.js'
import { isCode } from '../errors.js'
import { collectLabel, printJson, printText, withStore } from './context.js'
import { progressBar, type Progress } from './progress.js'
import { humanBytes } from './format.js'

/** snapshot and checkout: moving trees between the host filesystem and the store. */
export function registerTransfer(program: Command): void {
  program
    .command('snapshot')
    .description('store a host directory as a committed snapshot')
    .argument('<dir>', 'directory to snapshot')
    .option('--parent <name>', 'committed snapshot to store the directory as changes on top of')
    .option('--name <name>', 'name of the new snapshot (default: the directory name and the time)')
    .option('--label <key=value>', 'label the snapshot (repeatable)', collectLabel)
    .action((dir: string, opts: { parent?: string; name?: string; label?: Record<string, string> }, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const source = resolve(dir)
        const name = opts.name ?? (await unusedName(store, defaultName(source)))
        const info: SnapshotInfo = await withProgress(json, (progress) =>
          store.snapshotDir(source, { name, parent: opts.parent, labels: opts.label, progress: progress.report }),
        )
        if (json) printJson(info)
        else printText(`created snapshot '${info.name}'`)
      }),
    )

  program
    .command('checkout')
    .description("write a snapshot's tree out to a host directory")
    .argument('<snap>', 'snapshot to check out')
    .argument('<dir>', 'destination directory')
    .action((snap: string, dir: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const target = resolve(dir)
        await withProgress(json, (progress) => store.checkout(snap, target, { progress: progress.report }))
        if (json) printJson({ snapshot: snap, dir: target })
        else printText(`checked out '${snap}' to ${target}`)
      }),
    )
}

async function withProgress<T>(json: boolean, work: (progress: Progress) => Promise<T>): Promise<T> {
  // snapshotDir and checkout both report bytes copied
  const progress = progressBar(json, humanBytes)
  try {
    return await work(progress)
  } finally {
    progress.stop()
  }
}

const pad2 = (n: number): string => String(n).padStart(2, '0')

/** `<dir name>-YYYYMMDD-HHMMSS` in local time: readable, and sorts by when it was taken. */
function defaultName(source: string, now = new Date()): string {
  const date = `${now.getFullYear()}${pad2(now.getMonth() + 1)}${pad2(now.getDate())}`
  const time = `${pad2(now.getHours())}${pad2(now.getMinutes())}${pad2(now.getSeconds())}`
  return `${basename(source) || 'root'}-${date}-${time}`
}

/** `base`, or `base-2`, `base-3`… when snapshots of the same directory land in the same second. */
async function unusedName(store: Store, base: string): Promise<string> {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? base : `${base}-${n}`
    try {
      await store.stat(candidate)
    } catch (err) {
      if (isCode(err, 'ENOENT')) return candidate
      throw err
    }
  }
}
