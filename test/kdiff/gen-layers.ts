import type { Rng } from '../model/prng.js'
import { lookup, mergedNames, type Attrs, type Layer, type LayerNode } from './stack.js'

/**
 * Random lower layers in the kernel's on-disk format (as data; disk.ts writes them). Names come
 * from small pools so layers collide: a name is a file in one layer and a dir in another,
 * whiteouts and opaque dirs hide things below. Whiteouts go only where the kernel's lookup and
 * readdir agree on them (measured on Linux 6.18):
 *   - only in dirs that merge with a layer below (so never in the bottom layer): in a dir that
 *     does not, readdir passes the layer's dir through and lists the whiteout's name, although
 *     a lookup of it fails;
 *   - the xattr form (an empty regular file with trusted.overlay.whiteout) only in a dir whose
 *     trusted.overlay.opaque is 'x': lookup takes such a file for a whiteout in any dir, readdir
 *     only in an 'x' dir, and never in the bottom layer.
 */

const ROOT_NAMES = ['a', 'b', 'c', 'd', 'e', 'f']
const NAMES = ['a', 'b', 'f', 'g', 'h']
const MAX_DEPTH = 3
export const BIG = '/big'
/** Set up by generateLayers itself, left alone by the random part. */
const SPECIAL = new Set([BIG, '/bigl', '/mix', '/xim'])

const FILE_MODES = [0o644, 0o644, 0o600, 0o755, 0o444, 0o4755, 0o2755, 0o640]
const DIR_MODES = [0o755, 0o755, 0o700, 0o2775, 0o2755, 0o1777, 0o555]
const IDS = [1000, 1001, 65534]

function attrs(rng: Rng, modes: number[]): Attrs {
  const a: Attrs = { mode: rng.pick(modes), uid: 0, gid: 0, xattrs: {} }
  if (rng.chance(0.2)) a.uid = rng.pick(IDS)
  if (rng.chance(0.2)) a.gid = rng.pick(IDS)
  if (rng.chance(0.25)) a.xattrs[`user.${rng.pick(['a', 'b'])}`] = `v${rng.int(100)}`
  if (rng.chance(0.1)) a.xattrs['user.c'] = ''
  return a
}

function randomFile(rng: Rng): LayerNode {
  const size = rng.weighted([[0, 2], [rng.range(1, 200), 5], [rng.range(3000, 9000), 3], [rng.range(60000, 140000), 1]] as const)
  return { t: 'file', content: { kind: 'random', size, seed: rng.next() }, ...attrs(rng, FILE_MODES) }
}

/** Relative, without '..': a symlink never leads out of the tree, whatever dir it is moved to. */
const randomTarget = (rng: Rng): string =>
  rng.weighted([[rng.pick(ROOT_NAMES), 3], [`${rng.pick(NAMES)}/${rng.pick(NAMES)}`, 2], ['.', 1], ['nowhere', 1]] as const)

class LayerGen {
  readonly layer: Layer = new Map()
  private readonly files: string[] = []

  /** `below`: the layers under this one, top first; empty for the bottom layer. */
  constructor(private readonly rng: Rng, private readonly below: Layer[]) {}

  /** The layer root '/' must be set first. */
  build(): Layer {
    this.dir('/', 0, true)
    return this.layer
  }

  private add(path: string, node: LayerNode): void {
    this.layer.set(path, node)
    if (node.t === 'file') this.files.push(path)
  }

  /** Fills the dir at `path`; `lowerSeen`: no opaque dir of this layer cuts it from the layers below. */
  private dir(path: string, depth: number, lowerSeen: boolean): void {
    const rng = this.rng
    const prefix = path === '/' ? '/' : `${path}/`
    const lower = lowerSeen && this.below.length > 0 ? lookup(this.below, path) : { kind: 'none' as const }
    const merged = lower.kind === 'dir' && (this.layer.get(path) as { opaque?: string }).opaque !== 'y'
    const belowNames = merged ? mergedNames(this.below, path) : []
    const pool = [...new Set([...(depth === 0 ? ROOT_NAMES : NAMES), ...belowNames])].filter((n) => !this.layer.has(prefix + n) && !SPECIAL.has(prefix + n))
    const count = Math.min(pool.length, depth === 0 ? rng.range(this.below.length === 0 ? 5 : 2, 6) : rng.range(1, 4))
    // opaque=x: the kernel takes empty files with trusted.overlay.whiteout in this dir for whiteouts
    const xDir = merged && rng.chance(0.5)
    if (xDir) (this.layer.get(path) as { opaque?: string }).opaque = 'x'
    for (let k = 0; k < count; k++) {
      const name = pool.splice(rng.int(pool.length), 1)[0]
      const child = prefix + name
      const below = merged && belowNames.includes(name) ? lookup(this.below, child).kind : 'none'
      // over a dir below, mostly merge with it; over a file, mostly replace or delete it
      const kind = rng.weighted([
        ['whiteout', !merged ? 0 : below === 'none' ? 1 : 3],
        ['dir', depth >= MAX_DEPTH ? 0 : below === 'dir' ? 8 : below === 'nondir' ? 1 : depth < 2 ? 4 : 2],
        ['file', below === 'dir' ? 1 : 5],
        ['link', this.files.length > 0 ? 1 : 0],
        ['symlink', below === 'dir' ? 0.5 : 1],
      ] as const)
      if (kind === 'whiteout') this.add(child, { t: 'whiteout', form: xDir && rng.chance(0.7) ? 'xattr' : 'chr' })
      else if (kind === 'file') this.add(child, this.file(xDir))
      else if (kind === 'link') this.add(child, { t: 'link', of: rng.pick(this.files) })
      else if (kind === 'symlink') this.add(child, { t: 'symlink', target: randomTarget(rng), uid: rng.chance(0.2) ? rng.pick(IDS) : 0, gid: 0 })
      else {
        const opaque = below === 'dir' && rng.chance(0.35)
        this.add(child, { t: 'dir', ...attrs(rng, DIR_MODES), ...(opaque ? { opaque: 'y' as const } : {}) })
        this.dir(child, depth + 1, lowerSeen && !opaque)
      }
    }
  }

  /**
   * A file; in an opaque=x dir now and then one with trusted.overlay.whiteout that the kernel
   * does not take for a whiteout, as it is not empty. (An empty one outside such a dir would be
   * no test: the kernel's lookup hides it while its readdir lists it.)
   */
  private file(xDir: boolean): LayerNode {
    const f = randomFile(this.rng)
    if (!xDir || f.t !== 'file' || f.content.kind !== 'random' || !this.rng.chance(0.2)) return f
    return { ...f, content: { ...f.content, size: Math.max(1, f.content.size) }, whiteoutXattr: true }
  }
}

/**
 * 2 to 4 lower layers, top first. The bottom layer holds the big file (a recognizable pattern,
 * see disk.ts) and the name '/mix' as a dir, '/xim' as a file; the top layer turns them round.
 */
export function generateLayers(rng: Rng): Layer[] {
  const count = rng.range(2, 4)
  const bottomUp: Layer[] = []
  for (let i = 0; i < count; i++) {
    const gen = new LayerGen(rng, [...bottomUp].reverse())
    const layer = gen.layer
    layer.set('/', { t: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: {} })
    if (i === 0) {
      layer.set(BIG, { t: 'file', content: { kind: 'big', size: rng.range(4 << 20, 8 << 20) }, mode: 0o644, uid: 0, gid: 0, xattrs: { 'user.big': 'yes' } })
      if (rng.chance(0.5)) layer.set('/bigl', { t: 'link', of: BIG })
      layer.set('/mix', { t: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: {} })
      layer.set('/mix/inner', { t: 'file', content: { kind: 'random', size: 10, seed: 7 }, mode: 0o644, uid: 0, gid: 0, xattrs: {} })
      layer.set('/xim', { t: 'file', content: { kind: 'random', size: 20, seed: 8 }, mode: 0o644, uid: 1000, gid: 1000, xattrs: {} })
    }
    if (i === count - 1) {
      layer.set('/mix', { t: 'file', content: { kind: 'random', size: 30, seed: 9 }, mode: 0o600, uid: 0, gid: 0, xattrs: {} })
      layer.set('/xim', { t: 'dir', mode: 0o2775, uid: 0, gid: 1001, xattrs: {} })
      layer.set('/xim/in', { t: 'file', content: { kind: 'random', size: 40, seed: 10 }, mode: 0o644, uid: 0, gid: 1001, xattrs: {} })
    }
    gen.build()
    bottomUp.push(layer)
  }
  return bottomUp.reverse()
}
