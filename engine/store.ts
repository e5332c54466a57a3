import { randomBytes } from 'node:crypto'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Db } from './store/db.js'
import { isNoSpace, releaseReserve } from './store/space.js'
import { ChunkStore, xxh64Hasher, type ChunkHasher } from './store/chunks.js'
import { Counter } from './store/counters.js'
import { StoreLayer } from './store/layer.js'
import { layerKey, snapshotKey, SNAPSHOT_PREFIX, inodeKey } from './store/keys.js'
import { decode } from './store/codec.js'
import { ROOT_INO, nowTimespec, type InodeRecord, type LayerRecord, type SnapshotRecord } from './store/records.js'
import { EmptyTree, IndexTree, buildIndex, newNodeCache, type NodeCache } from './store/mergeindex.js'
import { LoadedLayer } from './store/loadedlayer.js'
import { Overlay } from './overlay/overlay.js'
import { NameChanges } from './overlay/dcache.js'
import type { LiveInode } from './overlay/live.js'
import { Mutex } from './overlay/lock.js'
import { redirectConfig } from './overlay/redirect.js'
import { T, type LowerTree } from './overlay/node.js'
import { copyUpRecord } from './overlay/copyup.js'
import { SnapshotFs } from './snapshotfs.js'
import { fsError } from './errors.js'
import { IMPORT_KEY_PREFIX, assertCommittedParent, assertFree, assertNotReserved, checkCreds, checkKey, checkLabels, isImportKey } from './validate.js'
import { collectGarbage } from './store/gc.js'
import { checkStore } from './store/fsck.js'
import { newDamage, reportDamage } from './store/damage.js'
import { rebuildDatabase } from './store/repair.js'
import { findLosses } from './store/lossreport.js'
import { layerUsage } from './store/usage.js'
import { snapshotDir } from './transfer/importdir.js'
import { checkout } from './transfer/checkout.js'
import { importOciLayer } from './transfer/ociimport.js'
import { exportOciLayer } from './transfer/ociexport.js'
import { exportOverlayDirs, importOverlayDir } from './transfer/overlaydir.js'
import { diff } from './diff.js'
import type { CheckoutOptions, DiffEntry, SnapshotDirOptions, ExportLayerOptions, ExportResult, ImportLayerOptions } from './types.js'
import type { FsOptions, FsckReport, GcReport, RepairReport, SnapshotInfo, SnapshotKind, Usage, WalkFilter } from './types.js'
import { ROOT } from './types.js'
import { openDirOverlay, type DirStackOptions } from './dirstack.js'

export interface StoreOptions {
  /** Store directory; default $STRATA_STORE, else ~/.local/share/strata. */
  path?: string
  /** Bytes of chunk data cached in memory, shared by every snapshot (default 256 MiB). */
  cacheBytes?: number
  /** Content hash for chunks; only tests replace it (to force collisions). */
  chunkHasher?: ChunkHasher
}

export const defaultStorePath = (): string => process.env.STRATA_STORE || join(homedir(), '.local', 'share', 'strata')

const info = (name: string, r: SnapshotRecord): SnapshotInfo => ({ name, kind: r.kind, parent: r.parent, labels: { ...r.labels }, created: r.created, updated: r.updated })

/**
 * A Strata store: one LevelDB directory holding chunks, layers, snapshots and their merged
 * indexes. Open it once per process; a second process gets a clear error naming the holder.
 */
export class Store {
  readonly db: Db
  readonly chunks: ChunkStore
  readonly lock = new Mutex()
  readonly nodeCache: NodeCache = newNodeCache()
  readonly dev: number
  private readonly inos: Counter
  private readonly layers: Counter
  private readonly nodes: Counter
  private readonly overlays = new Map<string, Overlay>()
  private readonly liveTables = new Map<string, Map<number, LiveInode>>()
  /** How each open snapshot's names change, shared by its overlays (see DentryCache). */
  private readonly nameChanges = new Map<string, NameChanges>()
  private readonly holds = new Map<string, { reason: string; shared: boolean }[]>()
  /** Temporary snapshots of the imports running in this process (`withImportSnapshot`). */
  private readonly importing = new Set<string>()
  private closed = false

  private constructor(db: Db, chunks: ChunkStore) {
    this.db = db
    this.chunks = chunks
    this.inos = new Counter(db, 'ino', ROOT_INO + 1, 4096)
    this.layers = new Counter(db, 'layer', 1, 64)
    this.nodes = new Counter(db, 'node', 1, 4096)
    this.dev = 0x5354 // 'ST'
  }

  static async open(opts: StoreOptions = {}): Promise<Store> {
    const path = resolve(opts.path ?? defaultStorePath())
    const db = await Db.open(path)
    const chunks = new ChunkStore(db, opts.chunkHasher ?? (await xxh64Hasher()), opts.cacheBytes ?? 256 * 1024 * 1024)
    return new Store(db, chunks)
  }

  /**
   * Rebuilds the database of a store that no longer opens (a lost `db/CURRENT` or MANIFEST, a
   * truncated or missing table) from every record LevelDB can still read, and reports what was
   * salvaged and what was lost, by snapshot and path. `db/` is first copied to
   * `db.before-repair-<time>` beside it, so the repair cannot lose more than the damage did.
   * Refused with EBUSY while any process has the store open. Pack files are left as they are: a
   * pack whose pointers were lost is listed, and is garbage to the next gc.
   */
  static async repair(opts: StoreOptions = {}): Promise<RepairReport> {
    const path = resolve(opts.path ?? defaultStorePath())
    const rebuilt = await rebuildDatabase(path)
    const store = await Store.open({ ...opts, path })
    try {
      const losses = await findLosses(store)
      const ok = rebuilt.lostTables === 0 && losses.damaged.length === 0 && losses.lostSnapshots.length === 0 && losses.orphanLayers.length === 0 && losses.unreferencedPacks.length === 0
      return { ok, store: path, ...rebuilt, ...losses }
    } finally {
      await store.close()
    }
  }

  get path(): string {
    return this.db.dir
  }

  // ---- snapshot records ----

  async record(key: string, syscall: string): Promise<SnapshotRecord> {
    const r = await this.db.get<SnapshotRecord>(snapshotKey(checkKey(key, syscall)))
    if (!r) throw fsError('ENOENT', syscall, key, `no snapshot '${key}'`)
    return r
  }

  private async committedParent(parent: string | undefined, syscall: string): Promise<string> {
    if (parent === undefined || parent === '') return ''
    assertCommittedParent(await this.record(parent, syscall), parent, syscall)
    return parent
  }

  /** The merged tree of a committed snapshot ('' is the empty tree). */
  async tree(name: string): Promise<LowerTree> {
    if (name === '') return new EmptyTree()
    const r = await this.record(name, 'lookup')
    if (r.kind !== 'committed' || !r.index || !r.layer) throw fsError('EINVAL', 'lookup', name, `'${name}' is not committed`)
    return new IndexTree(this.db, this.nodeCache, r.index, r.layer, r.links)
  }

  /** An active snapshot: the parent's tree with a new writable layer on top. */
  async prepare(key: string, parent?: string, opts: { labels?: Record<string, string> } = {}): Promise<SnapshotInfo> {
    this.assertOpen()
    return this.lock.run(async () => {
      await assertFree(this.db, key, 'prepare')
      return this.createActive(key, parent, opts)
    })
  }

  /**
   * Runs `fill` on a new temporary active snapshot on `parent` (the key is passed to it); `fill`
   * commits it under the import's name. A failure removes it. While `fill` runs the key is
   * recorded as in flight, so gc leaves it alone; one that a killed process left is an orphan.
   * Internal: the importers' one way to make their temporary snapshot.
   */
  async withImportSnapshot<R>(parent: string, fill: (key: string) => Promise<R>): Promise<R> {
    this.assertOpen()
    const key = `${IMPORT_KEY_PREFIX}${randomBytes(8).toString('hex')}`
    this.importing.add(key)
    try {
      await this.lock.run(async () => {
        if (await this.db.get(snapshotKey(key))) throw fsError('EEXIST', 'prepare', key, `snapshot '${key}' already exists`)
        await this.createActive(key, parent, {})
      })
      try {
        return await fill(key)
      } catch (err) {
        await this.discardImport(key)
        throw err
      }
    } finally {
      this.importing.delete(key)
    }
  }

  /**
   * Removes the temporary snapshot of a failed import, so that what it wrote is garbage for the
   * next gc. An import that filled the disk leaves no room to write the removal: then the
   * store's reserve is given up for it (see store/space.ts), since otherwise the import's data
   * would stay held until the next open. The import's own error is what its caller gets; a
   * removal that fails is told as a process warning (the next gc reclaims the snapshot as an
   * orphan, since no import fills it any more).
   */
  private async discardImport(key: string): Promise<void> {
    try {
      await this.remove(key)
    } catch (err) {
      try {
        if (!isNoSpace(err) || !releaseReserve(this.db.dir)) throw err
        await this.remove(key)
      } catch (again) {
        process.emitWarning(`store ${this.path}: the failed import's temporary snapshot '${key}' was not removed (${(again as Error).message}); the next gc reclaims it`, { code: 'STRATA_CLEANUP' })
      }
    }
  }

  /** Writes a new active snapshot's records; the caller holds the lock and has checked the key. */
  private async createActive(key: string, parent: string | undefined, opts: { labels?: Record<string, string> }): Promise<SnapshotInfo> {
    const p = await this.committedParent(parent, 'prepare')
    const tree = await this.tree(p)
    const layer = `l${(await this.layers.alloc()).toString(16)}`
    const now = Date.now()
    const rootRec: InodeRecord = p === ''
      ? { mode: 0o40755, uid: 0, gid: 0, rdev: 0, size: 0, nlink: 2, atime: nowTimespec(), mtime: nowTimespec(), ctime: nowTimespec() }
      : copyUpRecord(await tree.inode(tree.root))
    const rec: SnapshotRecord = { kind: 'active', parent: p, layer, labels: checkLabels(opts.labels, 'prepare', key), created: now, updated: now }
    const txn = this.db.txn()
    txn.put(layerKey(layer), { sealed: false, created: now } satisfies LayerRecord)
    txn.put(inodeKey(layer, ROOT_INO), rootRec)
    txn.put(snapshotKey(key), rec)
    await txn.commit(true)
    return info(key, rec)
  }

  /** A read-only view of a committed snapshot's tree. */
  async view(key: string, parent: string, opts: { labels?: Record<string, string> } = {}): Promise<SnapshotInfo> {
    this.assertOpen()
    return this.lock.run(async () => {
      await assertFree(this.db, key, 'view')
      const p = await this.committedParent(parent, 'view')
      const now = Date.now()
      const rec: SnapshotRecord = { kind: 'view', parent: p, labels: checkLabels(opts.labels, 'view', key), created: now, updated: now }
      const txn = this.db.txn()
      txn.put(snapshotKey(key), rec)
      await txn.commit(true)
      return info(key, rec)
    })
  }

  /**
   * Seals an active snapshot's layer as the committed snapshot `name` and removes `key`. Copies no
   * data; builds the merged index from the parent's, touching only what the layer changed.
   */
  async commit(name: string, key: string, opts: { labels?: Record<string, string> } = {}): Promise<SnapshotInfo> {
    this.assertOpen()
    checkKey(name, 'commit')
    const labels = checkLabels(opts.labels, 'commit', name)
    return this.lock.run(async () => {
      const r = await this.record(key, 'commit')
      if (r.kind !== 'active' || !r.layer) throw fsError('EINVAL', 'commit', key, `'${key}' is ${r.kind}; only active snapshots can be committed`)
      this.assertNotHeld(key, 'commit')
      if (name !== key) await assertFree(this.db, name, 'commit')
      else assertNotReserved(name, 'commit')
      const live = this.liveTables.get(key)
      if (live && live.size > 0) throw fsError('EBUSY', 'commit', key, `'${key}' has ${live.size} open file(s); close them before committing`)
      const layer = await LoadedLayer.load(new StoreLayer(r.layer, this.db))
      const parentTree = r.parent === '' ? undefined : ((await this.tree(r.parent)) as IndexTree)
      const txn = this.db.txn()
      const index = await buildIndex({ db: this.db, cache: this.nodeCache, txn, allocNodeId: async () => (await this.nodes.alloc()).toString(16) }, layer, parentTree)
      const parentLinks = r.parent === '' ? {} : (await this.record(r.parent, 'commit')).links ?? {}
      const links = { ...parentLinks }
      // Names of a hard-linked inode may stay in lower layers while its record moves up: every
      // record of such an inode here is the newest, and so is one that none of its names is in
      // this layer (its other names were unlinked here, leaving a single lower name).
      const named = layer.namedInodes()
      for (const [ino, nlink] of layer.fileLinks) {
        if (nlink > 1 || ino in links || !named.has(ino)) links[ino] = r.layer
      }
      const now = Date.now()
      const rec: SnapshotRecord = { kind: 'committed', parent: r.parent, layer: r.layer, index, labels: { ...r.labels, ...labels }, created: now, updated: now }
      if (Object.keys(links).length > 0) rec.links = links
      txn.put(layerKey(r.layer), { sealed: true, created: now } satisfies LayerRecord)
      if (name !== key) txn.del(snapshotKey(key))
      txn.put(snapshotKey(name), rec)
      await txn.commit(true)
      this.dropOverlay(key)
      return info(name, rec)
    })
  }

  /** Deletes a snapshot; refused while another snapshot has it as parent or files are open in it. */
  async remove(key: string): Promise<void> {
    this.assertOpen()
    return this.lock.run(async () => {
      const r = await this.record(key, 'remove')
      this.assertNotHeld(key, 'remove')
      for await (const [child, c] of this.records()) {
        if (c.parent === key) throw fsError('EBUSY', 'remove', key, `snapshot '${key}' has child '${child}'; remove it first`)
      }
      const live = this.liveTables.get(key)
      if (live && live.size > 0) throw fsError('EBUSY', 'remove', key, `'${key}' has open files`)
      const txn = this.db.txn()
      if (r.layer) {
        await new StoreLayer(r.layer, this.db).destroy(txn)
        txn.del(layerKey(r.layer))
      }
      txn.del(snapshotKey(key))
      await txn.commit(true)
      this.dropOverlay(key)
    })
  }

  /**
   * Marks `key` as in use outside the store's own calls (a mount serving it): `commit` and `remove`
   * of it fail with EBUSY and the message `'KEY' <reason>` until the returned release is called.
   * A hold conflicts with every other hold of the key, except that shared holds admit each other.
   */
  hold(key: string, reason: string, opts: { shared?: boolean } = {}): () => void {
    this.assertOpen()
    checkKey(key, 'hold')
    const shared = opts.shared === true
    const held = this.holds.get(key) ?? []
    const conflict = held.find((h) => !(shared && h.shared))
    if (conflict) throw fsError('EBUSY', 'hold', key, `'${key}' ${conflict.reason}`)
    const entry = { reason, shared }
    held.push(entry)
    this.holds.set(key, held)
    return () => {
      const rest = (this.holds.get(key) ?? []).filter((h) => h !== entry)
      if (rest.length > 0) this.holds.set(key, rest)
      else this.holds.delete(key)
    }
  }

  private assertNotHeld(key: string, syscall: string): void {
    const held = this.holds.get(key)?.[0]
    if (held) throw fsError('EBUSY', syscall, key, `'${key}' ${held.reason}`)
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return info(key, await this.record(key, 'stat'))
  }

  /** Replaces the labels of a snapshot (the only mutable field). */
  async update(key: string, patch: { labels: Record<string, string> }): Promise<SnapshotInfo> {
    this.assertOpen()
    if (typeof patch !== 'object' || patch === null || patch.labels === undefined) throw fsError('EINVAL', 'update', key, 'update needs { labels }')
    const labels = checkLabels(patch.labels, 'update', key)
    return this.lock.run(async () => {
      const r = await this.record(key, 'update')
      const next = { ...r, labels, updated: Date.now() }
      const txn = this.db.txn()
      txn.put(snapshotKey(key), next)
      await txn.commit(true)
      return info(key, next)
    })
  }

  /** Size and entry count of the snapshot's own layer (not its parents'). */
  async usage(key: string): Promise<Usage> {
    const r = await this.record(key, 'usage')
    if (!r.layer) return { size: 0, inodes: 0 }
    return layerUsage(this.db, this.chunks, new StoreLayer(r.layer, this.db))
  }

  async *records(): AsyncGenerator<[string, SnapshotRecord]> {
    for await (const [k, v] of this.db.scan(SNAPSHOT_PREFIX)) yield [k.slice(SNAPSHOT_PREFIX.length), decode<SnapshotRecord>(v)]
  }

  async *walk(filter: WalkFilter = {}): AsyncGenerator<SnapshotInfo> {
    const [lk, lv] = filter.label === undefined ? [] : splitLabel(filter.label)
    for await (const [name, r] of this.records()) {
      if (filter.kind && r.kind !== filter.kind) continue
      if (filter.parent !== undefined && r.parent !== filter.parent) continue
      if (lk !== undefined && (r.labels[lk] === undefined || (lv !== undefined && r.labels[lk] !== lv))) continue
      yield info(name, r)
    }
  }

  // ---- file views ----

  /**
   * The merged tree of a snapshot as a POSIX-like filesystem, writable for active snapshots.
   * The snapshot is opened on the first call, so a missing key fails there with ENOENT.
   */
  fs(key: string, opts: FsOptions = {}): SnapshotFs {
    const creds = checkCreds(opts.creds ?? ROOT, key)
    redirectConfig(opts, key)
    return new SnapshotFs(() => this.overlayFor(key, opts), creds, this.dev)
  }

  /**
   * Directory layers in the kernel's format stacked over committed snapshot `opts.base`, as the
   * kernel would mount them with the snapshot's tree as the bottom lower dir. Writes go to
   * `opts.upperdir` (a directory upper); without it the view is read-only.
   */
  stackFs(opts: DirStackOptions & { base: string }): SnapshotFs {
    const creds = checkCreds(opts.creds ?? ROOT, opts.base)
    let ov: Promise<Overlay> | undefined
    const open = (): Promise<Overlay> => {
      this.assertOpen()
      ov ??= this.tree(opts.base).then((tree) => openDirOverlay(opts, { tree, chunks: this.chunks, snapshot: opts.base }))
      return ov
    }
    return new SnapshotFs(open, creds, this.dev)
  }

  /**
   * The overlay of a snapshot, shared by every SnapshotFs of the same key and options. Internal:
   * the importer works on nodes it has resolved rather than on paths.
   */
  async overlayFor(key: string, opts: FsOptions): Promise<Overlay> {
    this.assertOpen()
    const cacheKey = `${key}\0${opts.redirectDir ?? 'on'}\0${opts.redirectMax ?? ''}\0${opts.redirectAlwaysFollow === true}`
    let ov = this.overlays.get(cacheKey)
    if (!ov) {
      const r = await this.record(key, 'open')
      const redirect = redirectConfig(opts)
      let live = this.liveTables.get(key)
      if (!live) this.liveTables.set(key, (live = new Map()))
      let names = this.nameChanges.get(key)
      if (!names) this.nameChanges.set(key, (names = new NameChanges()))
      const env = { db: this.db, chunks: this.chunks, lock: this.lock, allocIno: () => this.inos.alloc(), snapshot: key }
      if (r.kind === 'active') ov = new Overlay(env, new StoreLayer(r.layer!, this.db, this.chunks), await this.tree(r.parent), redirect, 'active', live, names)
      else if (r.kind === 'view') ov = new Overlay(env, null, await this.tree(r.parent), redirect, `'${key}' is a view`, live, names)
      else ov = new Overlay(env, null, await this.tree(key), redirect, `'${key}' is committed`, live, names)
      this.overlays.set(cacheKey, ov)
    }
    return ov
  }

  private dropOverlay(key: string): void {
    for (const [k, ov] of [...this.overlays]) {
      if (!k.startsWith(`${key}\0`)) continue
      ov.retired = true
      this.overlays.delete(k)
    }
    this.liveTables.delete(key)
    this.nameChanges.delete(key)
  }

  /** Writes out unflushed data of every open file. */
  async flushAll(): Promise<void> {
    for (const live of this.liveTables.values()) for (const l of live.values()) await l.flush()
  }

  // ---- host directories ----

  /** Imports a host directory as committed snapshot `opts.name`, storing only what differs from `opts.parent`. */
  async snapshotDir(dir: string, opts: SnapshotDirOptions): Promise<SnapshotInfo> {
    this.assertOpen()
    return snapshotDir(this, dir, opts)
  }

  /**
   * Imports one layer as committed snapshot `opts.name` on `opts.parent`: an OCI image layer tar
   * (format 'oci', gzip or not) or a layer dir in the kernel overlayfs format ('overlay').
   */
  async importLayer(source: string, opts: ImportLayerOptions): Promise<SnapshotInfo> {
    this.assertOpen()
    const format = (opts as Partial<ImportLayerOptions> | undefined)?.format
    if (format === 'oci') return importOciLayer(this, source, opts)
    if (format === 'overlay') {
      const { progress } = opts
      return importOverlayDir(this, source, { ...opts, progress: progress && ((bytes: number) => progress(bytes, undefined, source)) })
    }
    throw fsError('EINVAL', 'importLayer', String(source), `format must be 'oci' or 'overlay', not '${String(format)}'`)
  }

  /**
   * Exports snapshot `snap`: as an OCI layer tar of its own changes (or its whole tree with
   * `flatten`) written to file `dest` (replaced if it exists; gzip-compressed when it ends in
   * .gz or .tgz), or as layer dirs in the kernel overlayfs format under dir `dest`, with the
   * `lowerdir=` that mounts them.
   */
  async exportLayer(snap: string, dest: string, opts: ExportLayerOptions): Promise<ExportResult> {
    this.assertOpen()
    const format = (opts as Partial<ExportLayerOptions> | undefined)?.format
    if (format === 'oci') return exportOciLayer(this, snap, dest, opts)
    if (format === 'overlay') {
      if (opts.flatten) throw fsError('EINVAL', 'exportLayer', String(dest), "flatten applies to format 'oci' only")
      return exportOverlayDirs(this, snap, dest, { userxattr: opts.userxattr })
    }
    throw fsError('EINVAL', 'exportLayer', String(dest), `format must be 'oci' or 'overlay', not '${String(format)}'`)
  }

  /** Writes the merged tree of snapshot `key` (any kind) into a new or empty host directory. */
  async checkout(key: string, dir: string, opts: CheckoutOptions = {}): Promise<void> {
    this.assertOpen()
    return checkout(this, key, dir, opts)
  }

  /** Paths added, modified and deleted from the tree of `a` to that of `b` ('' is the empty tree), sorted by path. */
  async diff(a: string, b: string): Promise<DiffEntry[]> {
    this.assertOpen()
    return diff(this, a, b)
  }

  // ---- maintenance ----

  async gc(): Promise<GcReport> {
    this.assertOpen()
    return this.lock.run(async () => {
      await this.flushAll()
      const openRecords = [...this.liveTables.values()].flatMap((m) => [...m.values()].map((l) => l.storedRecord()))
      const orphans = await this.orphanImports()
      const report = await collectGarbage(this.db, this.chunks, this.nodeCache, openRecords, orphans)
      for (const key of orphans) this.dropOverlay(key)
      return report
    })
  }

  /**
   * Temporary snapshots of imports that no longer run. LevelDB admits one process to the store,
   * so an import can only be running in this one: any other was in a process that is gone. Keys
   * a mount holds or with files open here are spared, as a user may have opened one to look.
   */
  private async orphanImports(): Promise<string[]> {
    const orphans: string[] = []
    for await (const [key, r] of this.records()) {
      if (!isImportKey(key) || r.kind !== 'active' || this.importing.has(key) || this.holds.has(key)) continue
      if ((this.liveTables.get(key)?.size ?? 0) > 0) continue
      orphans.push(key)
    }
    return orphans
  }

  async fsck(opts: { verifyData?: boolean } = {}): Promise<FsckReport> {
    this.assertOpen()
    return this.lock.run(async () => {
      await this.flushAll()
      const damage = newDamage()
      return reportDamage(this, await checkStore(this.db, this.chunks, opts, damage), damage)
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.lock.run(async () => {
      await this.flushAll()
      this.closed = true
      await this.db.close()
    })
  }

  private assertOpen(): void {
    if (this.closed) throw fsError('EBADF', 'store', this.path, 'store is closed')
  }
}

function splitLabel(l: string): [string, string | undefined] {
  const i = l.indexOf('=')
  return i < 0 ? [l, undefined] : [l.slice(0, i), l.slice(i + 1)]
}

export type { SnapshotKind }
export { T }
