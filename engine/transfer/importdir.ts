import { lstat, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Store } from '../store.js'
import { StoreLayer } from '../store/layer.js'
import { Populator } from '../overlay/populate.js'
import { fsError } from '../errors.js'
import { assertCommittedParent, assertFree, checkLabels, checkProgress } from '../validate.js'
import type { FsOptions, SnapshotDirOptions, SnapshotInfo } from '../types.js'
import { HostScan, hostKey } from '../host/scan.js'
import { hostError } from '../host/io.js'
import { Importer } from './importer.js'

/**
 * Import of a host directory as a committed snapshot. The tree is written through the overlay
 * of a temporary active snapshot on the parent, so the new layer holds exactly what an overlay
 * mount would have recorded for the changes: new and rewritten files, whiteouts for removed
 * names, opaque dirs where a dir replaced something else. Regular files carry a host stamp
 * (`origin`); a file whose stamp still matches on the next import is not read again. A failure
 * removes the temporary snapshot; a crash can leave only that one, uncommitted.
 */
export async function snapshotDir(store: Store, dir: string, opts: SnapshotDirOptions): Promise<SnapshotInfo> {
  if (typeof dir !== 'string' || dir === '') throw fsError('EINVAL', 'snapshotDir', String(dir), 'directory must be a non-empty path')
  if (typeof opts !== 'object' || opts === null) throw fsError('EINVAL', 'snapshotDir', dir, 'options with a snapshot name are required')
  const { name, parent = '', labels, progress } = opts
  await assertFree(store.db, name, 'snapshotDir')
  if (parent !== '') assertCommittedParent(await store.record(parent, 'snapshotDir'), parent, 'snapshotDir')
  checkLabels(labels, 'snapshotDir', name)
  checkProgress(progress, 'snapshotDir', dir)

  const rootPath = resolve(dir)
  const rootStat = await stat(rootPath, { bigint: true }).catch((err: unknown) => { throw hostError(err, 'snapshotDir', rootPath) })
  if (!rootStat.isDirectory()) throw fsError('ENOTDIR', 'snapshotDir', rootPath)
  const storeStat = await lstat(store.path, { bigint: true }).catch(() => undefined)
  const scan = new HostScan(storeStat ? hostKey(storeStat) : undefined)
  const root = await scan.tree(rootPath, rootStat).catch((err: unknown) => { throw hostError(err, 'snapshotDir', rootPath) })

  return store.withImportSnapshot(parent, async (tmpKey) => {
    const fsOpts: FsOptions = { redirectDir: opts.redirectDir, redirectMax: opts.redirectMax, redirectAlwaysFollow: opts.redirectAlwaysFollow }
    const fs = store.fs(tmpKey, fsOpts)
    const pop = new Populator(await store.overlayFor(tmpKey, fsOpts), 'snapshotDir')
    const layer = new StoreLayer((await store.record(tmpKey, 'snapshotDir')).layer!, store.db)
    const parentTree = parent === '' ? undefined : await store.tree(parent)
    const importer = new Importer({ store, pop, fs, layer, parent: parentTree }, scan.bytes, progress)
    await importer.importDir(root, pop.root(), parentTree?.root, false)
    await importer.restoreStamps()
    await pop.flush()
    progress?.(importer.done, scan.bytes, rootPath)
    return await store.commit(name, tmpKey, { labels })
  }).catch((err: unknown) => { throw hostError(err, 'snapshotDir', rootPath) })
}
