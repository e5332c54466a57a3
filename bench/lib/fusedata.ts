import { existsSync, readFileSync } from 'node:fs'
import { mkdir, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { smallFileTree } from './hosttree.js'
import { Prng } from './random.js'
import { MiB } from './storage.js'

export interface DataSpec {
  /** Size of the big file, bytes (a multiple of 1 MiB). */
  bigBytes: number
  dirs: number
  filesPerDir: number
}

export interface DataInfo extends DataSpec {
  /** The data dir: `big` and `tree/d*\/f*`. */
  path: string
  /** Seconds spent writing it (0 when an earlier run's data was reused). */
  writeSeconds: number
}

const BIG_SEED = 4
const TREE_SEED = 5

/**
 * The lower layer every system serves: one big file of pseudo-random bytes (nothing to dedup or
 * compress) and a tree of small files. Kept between runs (with --keep) when the spec matches.
 */
export async function ensureData(root: string, spec: DataSpec, log: (m: string) => void): Promise<DataInfo> {
  const path = join(root, 'data')
  const marker = join(root, 'data.json')
  if (existsSync(marker) && readFileSync(marker, 'utf8') === JSON.stringify(spec)) {
    log(`reusing data in ${path}`)
    return { ...spec, path, writeSeconds: 0 }
  }
  await rm(path, { recursive: true, force: true })
  await mkdir(path, { recursive: true })
  const t0 = process.hrtime.bigint()
  log(`writing a ${spec.bigBytes / MiB} MiB file and ${spec.dirs * spec.filesPerDir} small files in ${spec.dirs} dirs`)
  const rng = new Prng(BIG_SEED)
  const fh = await open(join(path, 'big'), 'w')
  try {
    const piece = Buffer.allocUnsafe(MiB)
    for (let pos = 0; pos < spec.bigBytes; pos += MiB) {
      const n = Math.min(MiB, spec.bigBytes - pos)
      rng.fill(piece.subarray(0, n))
      await fh.write(piece, 0, n, pos)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  await smallFileTree(join(path, 'tree'), spec.dirs, spec.filesPerDir, TREE_SEED)
  await writeFile(marker, JSON.stringify(spec))
  return { ...spec, path, writeSeconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}

/** Parses 1G, 256M, 64k or a byte count. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B)?$/.exec(s.trim())
  if (!m) throw new Error(`bad size ${s} (e.g. 1G, 256M)`)
  const mult = { '': 1, k: 1024, m: MiB, g: 1024 * MiB }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g']
  return Math.round(Number(m[1]) * mult)
}
