import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Header } from 'tar-stream'
import type { Store } from '../store.js'
import type { SnapshotFs } from '../snapshotfs.js'
import { fsError } from '../errors.js'
import { assertCommittedParent, assertFree, checkLabels, checkProgress } from '../validate.js'
import type { ImportLayerOptions, SnapshotInfo } from '../types.js'
import { isDirType, joinPath, type LowerTree, type OvlNode } from '../overlay/node.js'
import { Populator, type AttrChange, type NewObject } from '../overlay/populate.js'
import { nowTimespec } from '../store/records.js'
import { IO_BYTES, hostError, writeNonZeroRuns } from '../host/io.js'
import { entryOf, readLayerTar, type EntryType, type LayerEntry } from './ocitar.js'
import { layerPath, memberOf, storePath } from './ocipaths.js'
import { LayerPlan, type Kind, type PlanNode, type Placement } from './ociplan.js'

const SYSCALL = 'importLayer'

/**
 * Import of an OCI image layer tar as a committed snapshot on a parent. The tar is read twice:
 * first every member is checked against the plan of what the layer does (ociplan.ts), writing
 * nothing, so a tar refused anywhere (a path out of the root, a link through a symlink...) leaves
 * the store as it was; then the same plan is followed again while the members are written
 * through a temporary active snapshot on the parent, which is committed under the name. The
 * layer then holds what an overlay mount would have recorded for the same changes: new objects,
 * whiteouts for removed names, opaque dirs where the tar says so. File data goes in as the
 * store writes any data, deduplicated by chunk against everything stored.
 */
export async function importOciLayer(store: Store, source: string, opts: ImportLayerOptions): Promise<SnapshotInfo> {
  if (typeof source !== 'string' || source === '') throw fsError('EINVAL', SYSCALL, String(source), 'source must be a non-empty path')
  if (typeof opts !== 'object' || opts === null) throw fsError('EINVAL', SYSCALL, source, 'options with a snapshot name are required')
  const { name, parent = '', labels, progress } = opts
  await assertFree(store.db, name, SYSCALL)
  if (parent !== '') assertCommittedParent(await store.record(parent, SYSCALL), parent, SYSCALL)
  checkLabels(labels, SYSCALL, name)
  checkProgress(progress, SYSCALL, source)
  const file = resolve(source)
  const { size } = await stat(file).catch((err: unknown) => { throw hostError(err, SYSCALL, file) })
  const parentTree = parent === '' ? undefined : await store.tree(parent)

  // the whole tar, checked before anything is written; the progress total counts both readings
  const check = new LayerPlan(parentTree, SYSCALL)
  await readLayerTar(file, SYSCALL, async (h) => { await planMember(check, h) }, (n) => progress?.(n, 2 * size, file))

  return store.withImportSnapshot(parent, async (tmpKey) => {
    const applier = await LayerApplier.open(store, tmpKey, parentTree)
    await readLayerTar(file, SYSCALL, (h, body) => applier.member(h, body), (n) => progress?.(size + n, 2 * size, file))
    await applier.finish()
    progress?.(2 * size, 2 * size, file)
    return await store.commit(name, tmpKey, { labels })
  })
}

/** What one member does, as the plan decided it; the checking pass stops there. */
type Action =
  | { do: 'none' }
  | { do: 'remove'; path: string[] }
  | { do: 'opaque'; dir: string[]; node: PlanNode }
  | { do: 'link'; path: string[]; target: string[]; placed: Placement }
  | { do: 'object'; entry: LayerEntry; path: string[]; placed: Placement }

/** A member that makes an object (any type but a hard link). */
type ObjectEntry = LayerEntry & { type: Exclude<EntryType, 'link'> }

const KINDS: Record<ObjectEntry['type'], Kind> = { file: 'other', dir: 'dir', symlink: 'symlink', chr: 'other', blk: 'other', fifo: 'other' }

/** Checks one member against the plan and advances the plan by it. Both passes go through here. */
async function planMember(plan: LayerPlan, header: Header): Promise<Action> {
  const entry = entryOf(header, SYSCALL)
  const member = memberOf(layerPath(entry.name, entry.name, SYSCALL), entry.name, SYSCALL)
  switch (member.kind) {
    case 'skip':
      return { do: 'none' }
    case 'whiteout':
      return (await plan.whiteout(member.path, entry.name)) ? { do: 'remove', path: member.path } : { do: 'none' }
    case 'opaque': {
      const node = await plan.opaque(member.dir, entry.name)
      return node ? { do: 'opaque', dir: member.dir, node } : { do: 'none' }
    }
    case 'object':
      break
  }
  const path = member.path
  if (entry.type !== 'link') return { do: 'object', entry, path, placed: await plan.place(path, KINDS[entry.type], entry.name) }
  const target = layerPath(entry.linkname, entry.name, SYSCALL, 'hard link target')
  if (target.length === path.length && target.every((c, i) => c === path[i])) return { do: 'none' }
  if (path.length < target.length && path.every((c, i) => c === target[i])) {
    throw fsError('EINVAL', SYSCALL, entry.name, `hard link would replace a directory holding its own target '${entry.linkname}'`)
  }
  const kind = await plan.linkTarget(target, entry.name, entry.linkname)
  return { do: 'link', path, target, placed: await plan.place(path, kind, entry.name) }
}

const TYPE_BITS: Record<ObjectEntry['type'], number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000 }

function newObject(e: ObjectEntry): NewObject {
  // a symlink's permission bits mean nothing on Linux: always 0777
  const obj: NewObject = { mode: TYPE_BITS[e.type] | (e.type === 'symlink' ? 0o777 : e.mode), uid: e.uid, gid: e.gid, rdev: e.rdev, atime: e.atime, mtime: e.mtime }
  if (e.xattrs) obj.xattrs = e.xattrs
  if (e.type === 'symlink') obj.target = e.linkname
  return obj
}

/** A dir member's attributes: all of them, xattrs included (none in the header removes those there). */
const dirChange = (e: LayerEntry): AttrChange => ({ mode: TYPE_BITS.dir | e.mode, uid: e.uid, gid: e.gid, atime: e.atime, mtime: e.mtime, xattrs: e.xattrs })

/** A parent dir the tar does not have, made as Docker makes it: root's, 0755. */
const madeDir = (): NewObject => ({ mode: 0o040755, uid: 0, gid: 0, rdev: 0, atime: nowTimespec(), mtime: nowTimespec() })

/**
 * Writes the members into the temporary snapshot, following the plan: new objects through a
 * Populator (complete records, in batches), removals and hard links through paths. The plan's
 * nodes keep the store node of each dir, so no path is looked up twice.
 */
class LayerApplier {
  private constructor(private readonly plan: LayerPlan, private readonly pop: Populator, private readonly fs: SnapshotFs) {
    plan.root.ovl = pop.root()
  }

  static async open(store: Store, key: string, parent: LowerTree | undefined): Promise<LayerApplier> {
    const pop = new Populator(await store.overlayFor(key, {}), SYSCALL)
    return new LayerApplier(new LayerPlan(parent, SYSCALL), pop, store.fs(key))
  }

  async member(header: Header, body: AsyncIterable<Buffer>): Promise<void> {
    const action = await planMember(this.plan, header)
    switch (action.do) {
      case 'none': return
      case 'remove': return this.pop.external(() => this.removeNow(storePath(action.path)))
      case 'opaque': return this.makeOpaque(action.dir, action.node)
      case 'link': return this.link(action.path, action.target, action.placed)
      case 'object': return this.object(action.entry, action.path, action.placed, body)
    }
  }

  /** The attributes of dir members go on last: what was made in a dir has moved its times. */
  async finish(): Promise<void> {
    const visit = async (node: PlanNode): Promise<void> => {
      if (node.attrs && node.ovl) await this.pop.setAttrs(node.ovl, node.attrs)
      for (const child of node.children?.values() ?? []) await visit(child)
    }
    await visit(this.plan.root)
    await this.pop.flush()
  }

  private async object(entry: LayerEntry, path: string[], placed: Placement, body: AsyncIterable<Buffer>): Promise<void> {
    if (entry.type === 'link') throw fsError('EIO', SYSCALL, entry.name, 'a hard link is not an object')
    const e = entry as ObjectEntry
    if (path.length === 0) {
      this.plan.root.attrs = dirChange(e)
      return
    }
    const dir = await this.dirNode(path.slice(0, -1))
    const name = path[path.length - 1]
    if (placed.merge) {
      placed.node.ovl ??= await this.existingDir(dir, name)
      placed.node.attrs = dirChange(e)
      return
    }
    if (placed.existing) await this.pop.external(() => this.removeNow(storePath(path)))
    switch (e.type) {
      case 'dir':
        placed.node.ovl = await this.pop.create(dir, name, newObject(e))
        placed.node.attrs = dirChange(e)
        return
      case 'file':
        return this.file(e, dir, name, body)
      default:
        await this.pop.create(dir, name, newObject(e))
    }
  }

  /** A regular file: a small one whole, a large one as it streams in, all-zero chunks left as holes. */
  private async file(e: ObjectEntry, dir: OvlNode, name: string, body: AsyncIterable<Buffer>): Promise<void> {
    if (e.size <= IO_BYTES) {
      const parts: Buffer[] = []
      for await (const chunk of body) parts.push(chunk)
      await this.pop.createFile(dir, name, newObject(e), Buffer.concat(parts))
      return
    }
    const file = await this.pop.openFile(dir, name, newObject(e))
    const buf = Buffer.allocUnsafe(IO_BYTES)
    let [pos, fill] = [0, 0]
    const flush = async (): Promise<void> => {
      await writeNonZeroRuns(buf, fill, pos, (off, len, at) => this.pop.write(file, buf.subarray(off, off + len), at))
      pos += fill
      fill = 0
    }
    for await (const chunk of body) {
      for (let used = 0; used < chunk.length;) {
        const n = chunk.copy(buf, fill, used)
        ;[fill, used] = [fill + n, used + n]
        if (fill === buf.length) await flush()
      }
    }
    await flush()
    await this.pop.finish(file, e.size)
  }

  private async link(path: string[], target: string[], placed: Placement): Promise<void> {
    await this.dirNode(path.slice(0, -1))
    await this.pop.external(async () => {
      if (placed.existing) await this.removeNow(storePath(path))
      await this.fs.link(storePath(target), storePath(path))
    })
  }

  /**
   * Hides the parent's part of a dir. When nothing the layer wrote is in it yet (the usual case:
   * the marker follows the dir's own member), the dir is removed and made again over its
   * whiteout, which makes it opaque as the kernel does: one flag rather than a whiteout per
   * name. Otherwise (and for the root) each name the layer did not write is removed.
   */
  private async makeOpaque(dir: string[], node: PlanNode): Promise<void> {
    if (dir.length > 0 && !LayerPlan.holdsWritten(node)) {
      const parent = await this.dirNode(dir.slice(0, -1))
      const name = dir[dir.length - 1]
      const old = node.ovl ?? (await this.existingDir(parent, name))
      const rec = await this.pop.inodeOf(old)
      await this.pop.external(() => this.removeNow(storePath(dir)))
      node.ovl = await this.pop.create(parent, name, { mode: rec.mode, uid: rec.uid, gid: rec.gid, rdev: 0, atime: rec.atime, mtime: rec.mtime, xattrs: rec.xattrs })
      return
    }
    await this.dirNode(dir)
    await this.pop.external(async () => {
      const clear = async (path: string[], n: PlanNode): Promise<void> => {
        for (const name of await this.fs.readdir(storePath(path))) {
          const child = n.children?.get(name)
          if (!child?.kind) await this.removeNow(storePath([...path, name]))
          else if (child.kind === 'dir') await clear([...path, name], child)
        }
      }
      await clear(dir, node)
    })
  }

  /** The store node of the dir at `path`, made when the plan made it, else looked up once. */
  private async dirNode(path: readonly string[]): Promise<OvlNode> {
    let node = this.plan.root
    let ovl = node.ovl!
    for (let i = 0; i < path.length; i++) {
      const child = node.children?.get(path[i])
      if (!child) throw fsError('EIO', SYSCALL, storePath(path.slice(0, i + 1)), 'the layer plan has no such dir')
      child.ovl ??= child.kind === 'dir' && child.cut ? await this.pop.create(ovl, path[i], madeDir()) : await this.existingDir(ovl, path[i])
      node = child
      ovl = child.ovl
    }
    return ovl
  }

  private async existingDir(dir: OvlNode, name: string): Promise<OvlNode> {
    const node = await this.pop.lookup(dir, name)
    if (!node || !isDirType(node.type)) throw fsError('EIO', SYSCALL, joinPath(dir.path, name), 'the store does not hold the dir the layer plan expects')
    return node
  }

  /** Removes a name and everything below it (run inside `pop.external`). */
  private async removeNow(path: string): Promise<void> {
    if ((await this.fs.lstat(path)).isDirectory()) {
      for (const name of await this.fs.readdir(path)) await this.removeNow(joinPath(path, name))
      await this.fs.rmdir(path)
    } else {
      await this.fs.unlink(path)
    }
  }
}
