import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Prng } from './random.js'
import { KiB, MiB } from './storage.js'

/** File size classes of a typical image tree: many small files, the bytes mostly in a few large ones. */
const SIZE_CLASSES: Array<{ weight: number; min: number; max: number }> = [
  { weight: 0.55, min: 64, max: 8 * KiB },
  { weight: 0.3, min: 8 * KiB, max: 256 * KiB },
  { weight: 0.12, min: 256 * KiB, max: 4 * MiB },
  { weight: 0.03, min: 4 * MiB, max: 32 * MiB },
]
const FILES_PER_DIR = 20

export interface TreeInfo {
  files: number
  dirs: number
  bytes: number
}

function pickSize(rng: Prng): number {
  const r = rng.int(0, 999_999) / 1_000_000
  let acc = 0
  for (const c of SIZE_CLASSES) {
    acc += c.weight
    if (r < acc) return rng.int(c.min, c.max)
  }
  const last = SIZE_CLASSES[SIZE_CLASSES.length - 1]
  return rng.int(last.min, last.max)
}

/** About `totalBytes` of fresh random files of mixed sizes, FILES_PER_DIR to a directory. */
export async function mixedTree(root: string, totalBytes: number, seed: number): Promise<TreeInfo> {
  const rng = new Prng(seed)
  const info: TreeInfo = { files: 0, dirs: 0, bytes: 0 }
  let dir = ''
  while (info.bytes < totalBytes) {
    if (info.files % FILES_PER_DIR === 0) {
      dir = join(root, `d${info.dirs++}`)
      await mkdir(dir, { recursive: true })
    }
    const size = Math.min(pickSize(rng), totalBytes - info.bytes)
    await writeFile(join(dir, `f${info.files}`), rng.bytes(Math.max(1, size)))
    info.files++
    info.bytes += Math.max(1, size)
  }
  return info
}

/** `dirs` directories of `filesPerDir` small files (100–2000 bytes). */
export async function smallFileTree(root: string, dirs: number, filesPerDir: number, seed: number): Promise<TreeInfo> {
  const rng = new Prng(seed)
  const info: TreeInfo = { files: 0, dirs: 0, bytes: 0 }
  for (let d = 0; d < dirs; d++) {
    const dir = join(root, `d${d}`)
    await mkdir(dir, { recursive: true })
    info.dirs++
    const writes: Promise<void>[] = []
    for (let f = 0; f < filesPerDir; f++) {
      const data = rng.bytes(rng.int(100, 2000))
      info.files++
      info.bytes += data.length
      writes.push(writeFile(join(dir, `f${f}`), data))
    }
    await Promise.all(writes)
  }
  return info
}
