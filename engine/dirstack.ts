import { stat } from 'node:fs/promises'
import { resolve, relative, isAbsolute } from 'node:path'
import type { Creds, OverlayOptions } from './types.js'
import { ROOT } from './types.js'
import { fsError, isCode } from './errors.js'
import { SnapshotFs } from './snapshotfs.js'
import { Overlay } from './overlay/overlay.js'
import { Mutex } from './overlay/lock.js'
import { redirectConfig } from './overlay/redirect.js'
import { stackLayers } from './overlay/stack.js'
import type { LowerTree, UpperLayer } from './overlay/node.js'
import { EmptyTree } from './store/mergeindex.js'
import type { ChunkStore } from './store/chunks.js'
import { DirLayer } from './layerdir/layer.js'
import { DirUpper } from './layerdir/upper.js'
import { allocDirLayerIno } from './layerdir/inos.js'
import { checkCreds } from './validate.js'

/**
 * A stack of directories in the kernel's overlay format, opened as the kernel mounts
 * `lowerdir=A:B,upperdir=U,workdir=W`. Without an upper dir the stack is read-only.
 */
export interface DirStackOptions extends OverlayOptions {
  /** Lower dirs, top first (the kernel's lowerdir= order). */
  lowerdir: string[]
  upperdir?: string
  workdir?: string
  /** Overlay xattrs under `user.overlay.` (the kernel's `userxattr` option). */
  userxattr?: boolean
  creds?: Creds
}

/** What a stack can hold below its directory layers: a store snapshot's tree. */
export interface StackBase {
  tree: LowerTree
  chunks: ChunkStore
  /** The snapshot's name, for errors about its data. */
  snapshot?: string
}

const DIR_STACK_DEV = 0x53544b

async function checkDir(path: string, what: string): Promise<string> {
  const abs = resolve(path)
  try {
    if (!(await stat(abs)).isDirectory()) throw fsError('ENOTDIR', 'mount', abs, `${what} is not a directory`)
  } catch (err) {
    if (isCode(err, 'ENOENT')) throw fsError('ENOENT', 'mount', abs, `${what} does not exist`)
    throw err
  }
  return abs
}

const nested = (a: string, b: string): boolean => {
  const r = relative(a, b)
  return r === '' || (!r.startsWith('..') && !isAbsolute(r))
}

/** The overlay of a directory stack (optionally above a store snapshot). */
export async function openDirOverlay(opts: DirStackOptions, base?: StackBase): Promise<Overlay> {
  if (!Array.isArray(opts.lowerdir) || (opts.lowerdir.length === 0 && !base)) throw fsError('EINVAL', 'mount', undefined, 'at least one lower dir is needed')
  // As the kernel: user.overlay.* can be set by unprivileged users, so redirects in them are never followed.
  if (opts.userxattr && opts.redirectDir !== undefined && opts.redirectDir !== 'nofollow') {
    throw fsError('EINVAL', 'mount', opts.upperdir ?? opts.lowerdir[0], `conflicting options: userxattr,redirect_dir=${opts.redirectDir}`)
  }
  const redirect = redirectConfig(opts.userxattr ? { ...opts, redirectDir: 'nofollow' } : opts)
  const lowers: string[] = []
  for (const d of opts.lowerdir) lowers.push(await checkDir(d, 'lower dir'))
  let upper: DirUpper | null = null
  if (opts.upperdir !== undefined) {
    if (opts.workdir === undefined) throw fsError('EINVAL', 'mount', opts.upperdir, 'an upper dir needs a work dir')
    const up = await checkDir(opts.upperdir, 'upper dir')
    const work = await checkDir(opts.workdir, 'work dir')
    if (nested(up, work) || nested(work, up)) throw fsError('EINVAL', 'mount', work, 'work dir and upper dir must not contain each other')
    if ((await stat(up)).dev !== (await stat(work)).dev) throw fsError('EXDEV', 'mount', work, 'work dir must be on the filesystem of the upper dir')
    upper = new DirUpper(up, { workdir: work, userxattr: opts.userxattr, allocIno: allocDirLayerIno, chunks: base?.chunks })
    await upper.prepare()
  } else if (opts.workdir !== undefined) {
    throw fsError('EINVAL', 'mount', opts.workdir, 'a work dir without an upper dir')
  }
  const layers: UpperLayer[] = lowers.map((d) => new DirLayer(d, { userxattr: opts.userxattr, allocIno: allocDirLayerIno }))
  const lower = stackLayers(layers, base?.tree ?? new EmptyTree(), redirect, () => false)
  const env = { chunks: base?.chunks, lock: new Mutex(), allocIno: async () => allocDirLayerIno(), snapshot: base?.snapshot }
  return new Overlay(env, upper, lower, redirect, 'no upper dir', new Map())
}

/** The merged tree of a directory stack as a POSIX-like filesystem (see SnapshotFs). */
export async function openDirStack(opts: DirStackOptions): Promise<SnapshotFs> {
  const creds = checkCreds(opts.creds ?? ROOT, opts.upperdir ?? opts.lowerdir?.[0] ?? '')
  const ov = await openDirOverlay(opts)
  return new SnapshotFs(async () => ov, creds, DIR_STACK_DEV)
}
