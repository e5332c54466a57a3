/**
 * Sequential read of one large file of a committed snapshot through the engine API, as the FUSE
 * front end reads it: `open`, then `read` of 1 MiB pieces from offset 0 to the end.
 *
 * Every repetition runs in a fresh process, so the first pass starts with the chunk cache empty.
 * Before it, LevelDB's files are either read into the OS page cache (the state after a recent
 * import or read) or dropped from it file by file (`--cold`). The same process then reads the file
 * again (second pass: LevelDB's files mapped already, and whatever the chunk cache kept), and
 * checks the content. Each pass reports MB/s and the process's CPU seconds per GB (all threads):
 * on a busy machine the second is the steadier. Where `fincore` is installed, each repetition
 * also says how much of the db was in the page cache before it (memory reclaim may evict it).
 *
 *   node dist/bench/read.js [--size MiB] [--reps N] [--piece KiB] [--cache MiB] [--cold] [--store DIR]
 *
 * `--store DIR` keeps the store (made on first use) between runs; otherwise it is made under
 * bench/results/tmp and deleted at the end.
 */
import { spawnSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Xxh64 } from '@node-rs/xxhash'
import { Store } from '../engine/index.js'
import { scratchDir } from './lib/scratch.js'
import { fmt, fmtSummary, summarize } from './lib/stats.js'
import { MiB } from './lib/storage.js'

interface Options {
  sizeMiB: number
  reps: number
  pieceKiB: number
  cacheMiB: number
  cold: boolean
  store?: string
  child: boolean
}

interface Pass {
  /** MB/s (10^6 bytes) of wall time */
  mbs: number
  /** CPU seconds of the whole process (every thread) per GB read: what the pass costs, less sensitive than MB/s to other load on the machine. */
  cpuPerGB: number
}

interface PassResult {
  first: Pass
  second: Pass
  ok: boolean
}

const FILE = '/big'
const SNAP = 'base'
/** Written next to the data so a kept store is only reused for the same size. */
const META = 'bench-read.json'

function parse(argv: string[]): Options {
  const o: Options = { sizeMiB: 512, reps: 5, pieceKiB: 1024, cacheMiB: 256, cold: false, child: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const num = (): number => {
      const v = Number(argv[++i])
      if (!(v > 0)) throw new Error(`${a} needs a positive number`)
      return v
    }
    if (a === '--size') o.sizeMiB = num()
    else if (a === '--reps') o.reps = num()
    else if (a === '--piece') o.pieceKiB = num()
    else if (a === '--cache') o.cacheMiB = num()
    else if (a === '--cold') o.cold = true
    else if (a === '--store') o.store = resolve(argv[++i] ?? '.')
    else if (a === '--child') o.child = true
    else throw new Error(`unknown option ${a}`)
  }
  return o
}

/** Makes the store with one random file of `sizeMiB`, unless `dir` already holds it. */
async function ensureStore(dir: string, sizeMiB: number): Promise<string> {
  const metaPath = join(dir, META)
  if (existsSync(metaPath)) {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { sizeMiB: number; hash: string }
    if (meta.sizeMiB === sizeMiB) return meta.hash
    throw new Error(`${dir} holds a ${meta.sizeMiB} MiB file; use another --store for ${sizeMiB} MiB`)
  }
  // random data made and hashed piece by piece, so that no size needs it all in memory
  const hasher = new Xxh64()
  const piece = Buffer.allocUnsafe(64 * MiB)
  const store = await Store.open({ path: dir })
  try {
    await store.prepare('w')
    const h = await store.fs('w').open(FILE, 'w')
    try {
      for (let off = 0; off < sizeMiB * MiB; off += piece.length) {
        const n = Math.min(piece.length, sizeMiB * MiB - off)
        randomFillSync(piece, 0, n)
        hasher.update(piece.subarray(0, n))
        for (let at = 0; at < n; at += MiB) await h.write(piece, at, Math.min(MiB, n - at), off + at)
      }
    } finally {
      await h.close()
    }
    await store.commit(SNAP, 'w')
  } finally {
    await store.close()
  }
  const hash = hasher.digest().toString(16)
  writeFileSync(metaPath, JSON.stringify({ sizeMiB, hash }))
  return hash
}

/** Reads every LevelDB file into the OS page cache, or drops each from it (`dd iflag=nocache`). */
function setPageCache(dir: string, cold: boolean): void {
  const db = join(dir, 'db')
  for (const name of readdirSync(db)) {
    const p = join(db, name)
    if (cold) spawnSync('dd', [`if=${p}`, 'iflag=nocache', 'count=0', 'status=none'])
    else readFileSync(p)
  }
}

/** MiB of the db's files in the OS page cache, when `fincore` (util-linux) is there to tell. */
function cachedMiB(dir: string): number | undefined {
  const db = join(dir, 'db')
  const files = readdirSync(db).map((n) => join(db, n))
  const p = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', ...files], { encoding: 'utf8' })
  if (p.status !== 0) return undefined
  return p.stdout.split('\n').reduce((sum, l) => sum + (Number(l.trim()) || 0), 0) / MiB
}

/** One repetition, in its own process: first pass, second pass, then a content check. */
async function child(o: Options, dir: string, expectHash: string): Promise<PassResult> {
  const store = await Store.open({ path: dir, cacheBytes: o.cacheMiB * MiB })
  try {
    const size = o.sizeMiB * MiB
    const piece = o.pieceKiB * 1024
    const buf = Buffer.allocUnsafe(piece)
    const pass = async (): Promise<Pass> => {
      const h = await store.fs(SNAP).open(FILE, 'r')
      try {
        const t0 = process.hrtime.bigint()
        const c0 = process.cpuUsage()
        for (let off = 0; off < size; off += piece) {
          const { bytesRead } = await h.read(buf, 0, piece, off)
          if (bytesRead !== Math.min(piece, size - off)) throw new Error(`short read at ${off}: ${bytesRead}`)
        }
        const s = Number(process.hrtime.bigint() - t0) / 1e9
        const cpu = process.cpuUsage(c0)
        return { mbs: size / 1e6 / s, cpuPerGB: (cpu.user + cpu.system) / 1e6 / (size / 1e9) }
      } finally {
        await h.close()
      }
    }
    const first = await pass()
    const second = await pass()
    // the content, read the same way, against the hash of what was written
    const hasher = new Xxh64()
    const h = await store.fs(SNAP).open(FILE, 'r')
    try {
      for (let off = 0; off < size; off += piece) {
        const { bytesRead } = await h.read(buf, 0, piece, off)
        hasher.update(buf.subarray(0, bytesRead))
      }
    } finally {
      await h.close()
    }
    return { first, second, ok: hasher.digest().toString(16) === expectHash }
  } finally {
    await store.close()
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2))
  if (o.child) {
    const [dir, hash] = [process.env.BENCH_READ_STORE!, process.env.BENCH_READ_HASH!]
    process.stdout.write(JSON.stringify(await child(o, dir, hash)))
    return
  }
  const scratch = o.store ? undefined : await scratchDir(resolve(fileURLToPath(import.meta.url), '../../../bench/results/tmp'), 'read')
  const dir = o.store ?? scratch!.path
  try {
    process.stderr.write(`store ${dir}: ${o.sizeMiB} MiB file…\n`)
    const hash = await ensureStore(dir, o.sizeMiB)
    const results: PassResult[] = []
    for (let r = 0; r < o.reps; r++) {
      setPageCache(dir, o.cold)
      const cached = cachedMiB(dir)
      const p = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--child'], {
        env: { ...process.env, BENCH_READ_STORE: dir, BENCH_READ_HASH: hash },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      if (p.status !== 0) throw new Error(`repetition ${r + 1} failed (exit ${p.status})`)
      const res = JSON.parse(p.stdout) as PassResult
      if (!res.ok) throw new Error(`repetition ${r + 1}: content read back differs from what was written`)
      process.stderr.write(`  ${r + 1}: first ${fmt(res.first.mbs)} MB/s (${fmt(res.first.cpuPerGB)} cpu-s/GB), second ${fmt(res.second.mbs)} MB/s (${fmt(res.second.cpuPerGB)} cpu-s/GB)${cached === undefined ? '' : `; ${fmt(cached)} MiB of the db cached before`}\n`)
      results.push(res)
    }
    const line = (name: string, passes: Pass[]): string =>
      `  ${name}: ${fmtSummary(summarize(passes.map((p) => p.mbs)))} MB/s, ${fmtSummary(summarize(passes.map((p) => p.cpuPerGB)))} cpu-s/GB`
    console.log(`sequential read of ${o.sizeMiB} MiB in ${o.pieceKiB} KiB pieces, chunk cache ${o.cacheMiB} MiB, LevelDB files ${o.cold ? 'dropped from' : 'read into'} the OS page cache before each process; ${o.reps} processes, median (min–max)`)
    console.log(line('first pass ', results.map((r) => r.first)))
    console.log(line('second pass', results.map((r) => r.second)))
  } finally {
    await scratch?.remove()
  }
}

await main()
