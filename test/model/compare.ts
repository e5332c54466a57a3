import type { SnapshotFs, Stats } from '../../engine/index.js'
import { hashOf, type Desc, type DirEntryValue, type Kind, type Outcome, type Value } from './values.js'

/**
 * Turning what the store shows into the model's terms, and comparing the two. Fields the model
 * leaves out on purpose: a dir's st_size (always 4096) and ctime (changes on every change); a
 * dir's st_nlink may be 1 (a merged dir, as the kernel's overlay reports) or 2 + its subdirs.
 */

export function kindOfMode(mode: number): Kind | 'other' {
  switch (mode & 0o170000) {
    case 0o100000: return 'file'
    case 0o040000: return 'dir'
    case 0o120000: return 'symlink'
    case 0o010000: return 'fifo'
    default: return 'other'
  }
}

const kindOfDirent = (d: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean }): Kind | 'other' =>
  d.isFile() ? 'file' : d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : d.isFIFO() ? 'fifo' : 'other'

/**
 * Model inode ids and store inode numbers must correspond one to one for the whole run: names
 * share an st_ino exactly when they are links of one model inode, and an inode keeps its number
 * across copy-up, commit and reopen. (Stricter than POSIX, which lets a freed number come back:
 * the store hands out numbers from a counter, so they never repeat within a store.)
 */
export class InoMap {
  private readonly byModel = new Map<number, number>()
  private readonly byStore = new Map<number, number>()

  check(modelId: number, storeIno: number): string | undefined {
    const known = this.byModel.get(modelId)
    if (known !== undefined && known !== storeIno) return `inode of model #${modelId} was st_ino ${known}, now ${storeIno}`
    const owner = this.byStore.get(storeIno)
    if (owner !== undefined && owner !== modelId) return `st_ino ${storeIno} belongs to model #${owner} but shows model #${modelId}`
    this.byModel.set(modelId, storeIno)
    this.byStore.set(storeIno, modelId)
    return undefined
  }
}

/** What a store stat shows, with the parts the model compares. */
export async function describeStore(fs: SnapshotFs, path: string, st: Stats, follow = false): Promise<Desc> {
  const type = kindOfMode(st.mode)
  const d: Desc = { type: type as Kind, mode: st.mode, uid: st.uid, gid: st.gid, ino: st.ino, nlink: st.nlink, xattrs: {}, atime: st.atimeNs, mtime: st.mtimeNs }
  if (type !== 'dir') d.size = st.size
  // an empty file has nothing to read (and a big dir of them stays quick to compare)
  if (type === 'file') d.hash = hashOf(st.size === 0 ? Buffer.alloc(0) : await fs.readFile(path))
  if (type === 'symlink') d.target = await fs.readlink(path)
  for (const name of (await fs.listxattr(path, { follow })).sort()) {
    d.xattrs[name] = (await fs.getxattr(path, name, { follow })).toString('hex')
  }
  return d
}

/** Differences between the model's view of one inode and the store's; empty when they agree. */
export function diffDesc(exp: Desc, act: Desc, inos: InoMap): string[] {
  const out: string[] = []
  const field = (name: string, e: unknown, a: unknown): void => {
    if (e !== a) out.push(`${name}: expected ${fmt(e)}, got ${fmt(a)}`)
  }
  field('type', exp.type, act.type)
  field('mode', exp.mode.toString(8), act.mode.toString(8))
  field('uid', exp.uid, act.uid)
  field('gid', exp.gid, act.gid)
  if (exp.type === 'dir') {
    if (act.nlink !== 1 && act.nlink !== 2 + exp.subdirs!) out.push(`nlink: expected 1 or ${2 + exp.subdirs!}, got ${act.nlink}`)
  } else {
    field('nlink', exp.nlink, act.nlink)
    field('size', exp.size, act.size)
  }
  field('content', exp.hash, act.hash)
  field('symlink target', exp.target, act.target)
  field('xattrs', JSON.stringify(exp.xattrs), JSON.stringify(act.xattrs))
  if (exp.atime !== undefined) field('atime', exp.atime, act.atime)
  if (exp.mtime !== undefined) field('mtime', exp.mtime, act.mtime)
  const inoProblem = inos.check(exp.ino, act.ino)
  if (inoProblem) out.push(inoProblem)
  return out
}

const fmt = (v: unknown): string => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? v : JSON.stringify(v))

/** Every name of a snapshot's tree as the store shows it (symlinks not followed). */
export async function captureStore(fs: SnapshotFs): Promise<{ tree: Map<string, Desc>; problems: string[] }> {
  const tree = new Map<string, Desc>()
  const problems: string[] = []
  const visit = async (path: string, st: Stats): Promise<void> => {
    const d = await describeStore(fs, path, st)
    tree.set(path, d)
    if (d.type !== 'dir') return
    for (const e of await fs.readdir(path, { withFileTypes: true })) {
      const child = path === '/' ? `/${e.name}` : `${path}/${e.name}`
      const cst = await fs.lstat(child)
      if (e.ino !== cst.ino) problems.push(`${child}: readdir ino ${e.ino} but lstat ino ${cst.ino}`)
      if (kindOfDirent(e) !== kindOfMode(cst.mode)) problems.push(`${child}: readdir type ${kindOfDirent(e)} but lstat type ${kindOfMode(cst.mode)}`)
      await visit(child, cst)
    }
  }
  await visit('/', await fs.lstat('/'))
  return { tree, problems }
}

/** Differences between two whole trees, path by path. */
export function diffTrees(exp: Map<string, Desc>, act: Map<string, Desc>, inos: InoMap): string[] {
  const out: string[] = []
  for (const [path, e] of exp) {
    const a = act.get(path)
    if (!a) { out.push(`${path}: missing in the store`); continue }
    for (const p of diffDesc(e, a, inos)) out.push(`${path}: ${p}`)
  }
  for (const path of act.keys()) if (!exp.has(path)) out.push(`${path}: in the store but not in the model`)
  return out
}

/** Compares one operation's result; a readdir's or stat's inode numbers go through the ino map. */
export function diffOutcome(exp: Outcome, act: Outcome, inos: InoMap): string[] {
  if (!exp.ok || !act.ok) {
    const e = exp.ok ? 'success' : exp.code
    const a = act.ok ? 'success' : act.code
    return e === a ? [] : [`expected ${e}, got ${a}`]
  }
  return diffValue(exp.value, act.value, inos)
}

function diffValue(exp: Value | undefined, act: Value | undefined, inos: InoMap): string[] {
  if (exp === undefined) return []
  if (act === undefined || act.t !== exp.t) return [`expected a ${exp.t} result, got ${act?.t ?? 'none'}`]
  switch (exp.t) {
    case 'stat':
      return diffDesc(exp.d, (act as typeof exp).d, inos)
    case 'dir':
      return diffEntries(exp.entries, (act as typeof exp).entries, inos)
    default:
      return JSON.stringify(exp) === JSON.stringify(act) ? [] : [`expected ${JSON.stringify(exp)}, got ${JSON.stringify(act)}`]
  }
}

function diffEntries(exp: DirEntryValue[], act: DirEntryValue[], inos: InoMap): string[] {
  const names = (l: DirEntryValue[]): string => l.map((e) => `${e.name}:${e.type}`).join(' ')
  if (names(exp) !== names(act)) return [`readdir: expected [${names(exp)}], got [${names(act)}]`]
  const out: string[] = []
  exp.forEach((e, i) => {
    const p = inos.check(e.ino, act[i].ino)
    if (p) out.push(`readdir ${e.name}: ${p}`)
  })
  return out
}
