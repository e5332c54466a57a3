/** A deterministic tree shaped like a build's output, and the 1% changes of a rebuild, for the snapshot workload. */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Prng } from '../lib/random.js'
import { KiB, MiB } from '../lib/storage.js'

/**
 * Size classes of a build tree: most files are small objects and headers, the bytes are mostly in
 * a few MiB-sized archives and a handful of libraries of tens of MiB. Shares are of the file count;
 * with 5,000 files they make about 300 MiB.
 */
const CLASSES: Array<{ share: number; min: number; max: number; ext: string }> = [
  { share: 0.0008, min: 12 * MiB, max: 28 * MiB, ext: '.so' },
  { share: 0.01, min: MiB, max: 3.5 * MiB, ext: '.a' },
  { share: 0.14, min: 16 * KiB, max: 256 * KiB, ext: '.o' },
]
const SMALL = { min: 100, max: 8 * KiB, exts: ['.o', '.d', '.h', '.js', '.map'] }
const FILES_PER_DIR = 20
const MAX_DEPTH = 5
const DIR_NAMES = ['obj', 'lib', 'gen', 'res', 'bin', 'pkg', 'intermediates', 'classes']
/** Files written at once: enough to keep the disk busy, few enough not to hold much memory. */
const WRITE_BATCH = 16

export interface BuildFile {
  /** Relative to the tree's root, no leading slash. */
  path: string
  size: number
  /** Index of the file whose original content this file holds (itself, or the file it duplicates). */
  source: number
  /** 0: original content; r: rewritten in change round r. */
  version: number
}

export interface BuildTree {
  root: string
  seed: number
  files: BuildFile[]
  dirs: number
  /** Files holding another file's content. */
  duplicates: number
}

/** Content of file `i` at its current version, the same bytes on every call. */
export function contentOf(tree: BuildTree, i: number): Buffer {
  const f = tree.files[i]
  const seed = f.version === 0 ? tree.seed * 1_000_003 + f.source : tree.seed * 1_000_003 + 100_000_000 * f.version + i
  return new Prng(seed).bytes(f.size)
}

export const treeBytes = (tree: BuildTree): number => tree.files.reduce((n, f) => n + f.size, 0)

/** Writes `count` files (about 10% of them duplicates of others) in nested dirs under `root`. */
export async function writeBuildTree(root: string, count: number, seed: number): Promise<BuildTree> {
  const rng = new Prng(seed)
  const dirs = [''] // the root; every other dir hangs below an earlier one
  const depth = [0]
  for (let d = 1; d < Math.ceil(count / FILES_PER_DIR); d++) {
    let parent = rng.int(0, d - 1)
    if (depth[parent] >= MAX_DEPTH) parent = 0
    dirs.push(join(dirs[parent], `${DIR_NAMES[rng.int(0, DIR_NAMES.length - 1)]}${d}`))
    depth.push(depth[parent] + 1)
  }
  // Class of every file, in a shuffled order so that big files land anywhere in the tree.
  const classOf: number[] = []
  CLASSES.forEach((c, k) => { for (let n = 0; n < Math.max(1, Math.round(count * c.share)); n++) classOf.push(k) })
  while (classOf.length < count) classOf.push(-1)
  for (let i = classOf.length - 1; i > 0; i--) {
    const j = rng.int(0, i)
    ;[classOf[i], classOf[j]] = [classOf[j], classOf[i]]
  }
  const files: BuildFile[] = classOf.map((k, i) => {
    const c = k >= 0 ? CLASSES[k] : { ...SMALL, ext: SMALL.exts[rng.int(0, SMALL.exts.length - 1)] }
    const dir = dirs[rng.int(0, dirs.length - 1)]
    return { path: join(dir, `f${i}${c.ext}`), size: rng.int(c.min, Math.floor(c.max)), source: i, version: 0 }
  })
  // Duplicates: build trees repeat headers, resources and copied libraries, never the biggest outputs.
  const candidates = files.flatMap((_, i) => (classOf[i] === 0 ? [] : [i]))
  const dupCount = Math.round(count * 0.1)
  const isDup = new Set<number>()
  while (isDup.size < dupCount) isDup.add(candidates[rng.int(0, candidates.length - 1)])
  const originals = candidates.filter((i) => !isDup.has(i))
  for (const i of isDup) {
    const src = originals[rng.int(0, originals.length - 1)]
    files[i].source = src
    files[i].size = files[src].size
  }
  const tree: BuildTree = { root, seed, files, dirs: dirs.length, duplicates: isDup.size }
  for (const d of dirs) await mkdir(join(root, d), { recursive: true })
  await writeFiles(tree, files.map((_, i) => i))
  return tree
}

async function writeFiles(tree: BuildTree, indexes: number[]): Promise<void> {
  for (let b = 0; b < indexes.length; b += WRITE_BATCH) {
    await Promise.all(indexes.slice(b, b + WRITE_BATCH).map(async (i) => {
      const p = join(tree.root, tree.files[i].path)
      await mkdir(dirname(p), { recursive: true })
      await writeFile(p, contentOf(tree, i))
    }))
  }
}

/**
 * Round `round` of a rebuild: 1% of the files (at least one), picked by the round's seed, get
 * new content of the same size. Returns their indexes and the bytes rewritten.
 */
export async function changeFiles(tree: BuildTree, round: number): Promise<{ changed: number[]; bytes: number }> {
  const rng = new Prng(tree.seed * 7919 + round)
  const want = Math.max(1, Math.round(tree.files.length / 100))
  const picked = new Set<number>()
  while (picked.size < want) picked.add(rng.int(0, tree.files.length - 1))
  const changed = [...picked].sort((a, b) => a - b)
  for (const i of changed) tree.files[i].version = round
  await writeFiles(tree, changed)
  return { changed, bytes: changed.reduce((n, i) => n + tree.files[i].size, 0) }
}

/** Puts every changed file back to its original content, so the next repetition starts from the same tree. */
export async function restoreFiles(tree: BuildTree): Promise<void> {
  const changed = tree.files.flatMap((f, i) => (f.version === 0 ? [] : [i]))
  for (const i of changed) tree.files[i].version = 0
  await writeFiles(tree, changed)
}
