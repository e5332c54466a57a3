/**
 * Why 64 KiB chunks: for each candidate chunk size, on a fresh LevelDB and the same random data,
 *   (a) ingest MB/s: hash every chunk and write it in batched puts (plus the ref pages and record),
 *   (b) growth of a 4 KiB write into the middle of the file in a new layer (one chunk + refs),
 *   (c) sequential read MB/s of the whole file, one get per chunk and one getMany per 1 MiB read.
 * The sizes run in rotating order within each repetition, so machine noise spreads over all.
 *
 *   node dist/bench/chunk-size.js [--quick] [--json FILE] [--reps N] [--dir DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { cpus } from 'node:os'
import { parseArgs } from './lib/args.js'
import { ChunkDb, PAGE_REFS, REF_SIZE, BATCH_BYTES } from './lib/chunkmodel.js'
import { Prng } from './lib/random.js'
import { scratchDir } from './lib/scratch.js'
import { fmt, fmtSummary, summarize, timeMs } from './lib/stats.js'
import { renderTable } from './lib/table.js'
import { KiB, MiB } from './lib/storage.js'

const SIZES_KIB = [16, 32, 64, 128, 256]
const WRITE = 4 * KiB
const READ_SIZE = MiB

interface Sample {
  ingestMBs: number
  growthBytes: number
  growthKeys: number
  writeMs: number
  getMBs: number
  getManyMBs: number
}

async function measure(root: string, chunkSize: number, data: Buffer, patch: Buffer): Promise<Sample> {
  const dir = await scratchDir(root, `chunk${chunkSize / KiB}k`)
  try {
    let db = await ChunkDb.open(dir.path, chunkSize)
    let file!: Awaited<ReturnType<ChunkDb['ingest']>>
    const ingestMs = await timeMs(async () => { file = await db.ingest('base', data) })
    let growth!: Awaited<ReturnType<ChunkDb['overwrite']>>
    const writeMs = await timeMs(async () => { growth = await db.overwrite('child', file, data.length / 2, patch) })
    // Reopen so reads start from LevelDB's files (OS page cache warm, LevelDB's block cache empty).
    await db.close()
    db = await ChunkDb.open(dir.path, chunkSize)
    const mbs = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000)
    let read = 0
    const getMs = await timeMs(async () => { read = await db.readEachChunk(file) })
    if (read !== data.length) throw new Error(`read back ${read} of ${data.length} bytes`)
    const getManyMs = await timeMs(async () => { read = await db.readMany(file, READ_SIZE) })
    if (read !== data.length) throw new Error(`read back ${read} of ${data.length} bytes`)
    await db.close()
    return { ingestMBs: mbs(data.length, ingestMs), growthBytes: growth.bytes, growthKeys: growth.keys, writeMs, getMBs: mbs(data.length, getMs), getManyMBs: mbs(data.length, getManyMs) }
  } finally {
    await dir.remove()
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const fileSize = (args.quick ? 128 : 1024) * MiB
  const reps = args.reps ?? (args.quick ? 2 : 5)
  const started = new Date()
  console.log(`# Strata chunk size bench — ${started.toISOString()}${args.quick ? ' (quick)' : ''}`)
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${reps} repetitions, file ${fileSize / MiB} MiB\n`)
  const data = new Prng(3).bytes(fileSize)
  const patch = new Prng(4).bytes(WRITE)
  const samples = new Map<number, Sample[]>(SIZES_KIB.map((k) => [k, []]))
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < SIZES_KIB.length; i++) {
      const kib = SIZES_KIB[(i + rep) % SIZES_KIB.length]
      const s = await measure(args.dir, kib * KiB, data, patch)
      samples.get(kib)!.push(s)
      process.stderr.write(`rep ${rep + 1} ${kib} KiB: ingest ${fmt(s.ingestMBs)} MB/s, growth ${s.growthBytes} B, get ${fmt(s.getMBs)} MB/s, getMany ${fmt(s.getManyMBs)} MB/s\n`)
    }
  }

  const col = (kib: number, f: (s: Sample) => number): string => fmtSummary(summarize(samples.get(kib)!.map(f)))
  // Ratios to 64 KiB within each repetition, where the sizes ran back to back.
  const vs64 = (kib: number, f: (s: Sample) => number): string => fmt(summarize(samples.get(kib)!.map((s, rep) => f(s) / f(samples.get(64)![rep]))).median)
  const perGiB = (kib: number): number => (1024 * 1024) / kib
  const table = {
    title: `Chunk size: ${fileSize / MiB} MiB of random data on a fresh LevelDB (the store's options), median (min–max)`,
    headers: ['chunk', '(a) ingest MB/s', 'vs 64 KiB', '(b) 4 KiB write adds, bytes', 'keys', 'write+sync ms', '(c) read, get per chunk MB/s', `(c) read, getMany per ${READ_SIZE / MiB} MiB MB/s`, 'vs 64 KiB', 'ref bytes per GiB'],
    rows: SIZES_KIB.map((kib) => [
      `${kib} KiB`,
      col(kib, (s) => s.ingestMBs),
      vs64(kib, (s) => s.ingestMBs),
      String(samples.get(kib)![0].growthBytes),
      String(samples.get(kib)![0].growthKeys),
      col(kib, (s) => s.writeMs),
      col(kib, (s) => s.getMBs),
      col(kib, (s) => s.getManyMBs),
      vs64(kib, (s) => s.getManyMBs),
      String(perGiB(kib) * REF_SIZE),
    ]),
    notes: [
      `Ingest: xxh64 per chunk + puts in ${BATCH_BYTES / MiB} MiB batches (no existence check). Refs of files over ${PAGE_REFS} chunks go in pages of ${PAGE_REFS} refs; a write adds the new chunk, the one changed page and the new record (the same in every repetition). 'vs 64 KiB' is the median of per-repetition ratios. MB = MiB.`,
    ],
  }
  console.log(renderTable(table))
  if (args.json) {
    await mkdir(dirname(args.json), { recursive: true })
    await writeFile(args.json, JSON.stringify({ started: started.toISOString(), node: process.version, fileSize, reps, samples: Object.fromEntries(samples) }, null, 2))
  }
}

await main()
