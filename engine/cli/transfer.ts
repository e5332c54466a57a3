import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Option, type Command } from 'commander'
import type { Store } from '../store.js'
import type { ExportResult, LayerFormat, SnapshotInfo } from '../types.js'
import { isCode } from '../errors.js'
import { collectLabel, hostPath, printJson, printText, withStore } from './context.js'
import { progressBar, type Progress } from './progress.js'
import { humanBytes } from './format.js'

/** snapshot, checkout, import and export: moving trees and layers between the host and the store. */
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
        const source = hostPath(dir)
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
        const target = hostPath(dir)
        await withProgress(json, (progress) => store.checkout(snap, target, { progress: progress.report }))
        if (json) printJson({ snapshot: snap, dir: target })
        else printText(`checked out '${snap}' to ${target}`)
      }),
    )

  program
    .command('import')
    .description('store a layer (an OCI layer tar, or an overlayfs layer dir) as a committed snapshot')
    .argument('<source>', 'layer tar (.tar, .tar.gz) or layer dir')
    .addOption(formatOption())
    .requiredOption('--name <name>', 'name of the new snapshot')
    .option('--parent <name>', 'committed snapshot the layer applies to')
    .option('--label <key=value>', 'label the snapshot (repeatable)', collectLabel)
    .option('--userxattr', 'overlay: the layer\'s markers are user.overlay.* xattrs')
    .action(async (source: string, opts: { format?: LayerFormat; name: string; parent?: string; label?: Record<string, string>; userxattr?: boolean }, cmd: Command) => {
      const path = hostPath(source)
      const format = opts.format ?? (await sourceFormat(path, cmd))
      await withStore(cmd, async (store, { json }) => {
        const info = await withProgress(json, (progress) =>
          store.importLayer(path, { format, name: opts.name, parent: opts.parent, labels: opts.label, userxattr: opts.userxattr, progress: progress.report }),
        )
        if (json) printJson(info)
        else printText(`imported '${path}' as snapshot '${info.name}'`)
      })
    })

  program
    .command('export')
    .description("write a snapshot's layer out: an OCI layer tar of its changes, or overlayfs layer dirs (printing the lowerdir= value that mounts them)")
    .argument('<snap>', 'snapshot to export')
    .argument('<dest>', 'tar file (.tar, or .tar.gz/.tgz compressed), or dir for the layer dirs')
    .addOption(formatOption())
    .option('--flatten', 'oci: the whole tree, not only the changes against the parent')
    .option('--userxattr', 'overlay: write the markers as user.overlay.* xattrs')
    .action(async (snap: string, dest: string, opts: { format?: LayerFormat; flatten?: boolean; userxattr?: boolean }, cmd: Command) => {
      const path = hostPath(dest)
      const format = opts.format ?? (await destFormat(path, cmd))
      await withStore(cmd, async (store, { json }) => {
        const result: ExportResult = await withProgress(json, (progress) =>
          store.exportLayer(snap, path, { format, flatten: opts.flatten, userxattr: opts.userxattr, progress: progress.report }),
        )
        if (json) printJson(result)
        else if (result.lowerdir !== undefined) printText(result.lowerdir)
        else printText(`exported '${snap}' to ${result.path}`)
      })
    })
}

const formatOption = (): Option => new Option('--format <format>', 'layer format (default: found from the path)').choices(['oci', 'overlay'])

/** A dir is an overlayfs layer, a file an OCI layer tar. */
async function sourceFormat(path: string, cmd: Command): Promise<LayerFormat> {
  const st = await stat(path).catch(() => undefined)
  if (!st) return cmd.error(`cannot tell the format of '${path}' (it does not exist); give --format`, { exitCode: 2 })
  return st.isDirectory() ? 'overlay' : 'oci'
}

/** A tar name means oci, an existing dir overlay; anything else needs --format. */
async function destFormat(path: string, cmd: Command): Promise<LayerFormat> {
  if (/\.(tar|tar\.gz|tgz)$/.test(path)) return 'oci'
  if ((await stat(path).catch(() => undefined))?.isDirectory()) return 'overlay'
  return cmd.error(`cannot tell the format from '${path}' (not .tar, .tar.gz or .tgz, nor a dir); give --format`, { exitCode: 2 })
}

async function withProgress<T>(json: boolean, work: (progress: Progress) => Promise<T>): Promise<T> {
  // every transfer reports bytes (copied, or read from a layer tar)
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
