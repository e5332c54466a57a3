/** The engine calls the micro workload times, on one store built for them. */
import { Store } from '../../engine/index.js'
import { writeFileInPieces } from '../lib/bigfile.js'
import { Prng } from '../lib/random.js'
import { KiB, MiB } from '../lib/storage.js'

export const STACK_DEPTH = 50
export const DEEP_PATH = '/a/b/c/d/target'
export const BIG_BYTES = 64 * MiB
const CHUNK = 64 * KiB
const PATH_DIRS = ['/', '/a', '/a/b', '/a/b/c', '/a/b/c/d']

export interface MicroCase {
  id: string
  title: string
  notes: string[]
  /** One timed operation. */
  op(): Promise<void>
  /**
   * Untimed: makes `n` more operations possible, for calls that use something up (each copy-up
   * and each commit needs a fresh active snapshot). Absent when an operation can repeat forever.
   */
  replenish?(n: number): Promise<void>
  /** Operations the prepared pool still allows (Infinity without a pool). */
  left(): number
  /** Throws unless the last operation did what it should; run after an untimed first one and after timing. */
  check(): Promise<void>
}

/**
 * A store with a 50-layer stack whose every layer changes each directory on the way to
 * DEEP_PATH (the worst case for a per-layer lookup), and a snapshot holding a 64 MiB file.
 */
export async function buildFixture(path: string): Promise<Store> {
  const store = await Store.open({ path })
  try {
    await store.prepare('s-w1')
    const fs1 = store.fs('s-w1')
    await fs1.mkdir('/a/b/c/d', { recursive: true })
    await fs1.writeFile(DEEP_PATH, 'bottom layer')
    await store.commit('s1', 's-w1')
    for (let d = 2; d <= STACK_DEPTH; d++) {
      await store.prepare(`s-w${d}`, `s${d - 1}`)
      const fs = store.fs(`s-w${d}`)
      for (const dir of PATH_DIRS) await fs.writeFile(`${dir === '/' ? '' : dir}/x`, String(d))
      await store.commit(`s${d}`, `s-w${d}`)
    }
    await store.prepare('big-w')
    await writeFileInPieces(store.fs('big-w'), '/big', bigData())
    await store.fs('big-w').writeFile('/small', 'base\n')
    await store.commit('big', 'big-w')
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}

const bigData = (): Buffer => new Prng(9).bytes(BIG_BYTES)

export function lookupCase(store: Store): MicroCase {
  const fs = store.fs(`s${STACK_DEPTH}`)
  return {
    id: 'micro-lookup',
    title: `SnapshotFs.stat of ${DEEP_PATH} in a committed snapshot over ${STACK_DEPTH} layers, warm`,
    notes: [`Every one of the ${STACK_DEPTH} layers changes each directory on the path; the file is in the bottom layer. Warm: the path was looked up before timing.`],
    op: async () => { await fs.stat(DEEP_PATH) },
    left: () => Infinity,
    check: async () => {
      const st = await fs.stat(DEEP_PATH)
      if (!st.isFile() || st.size !== 'bottom layer'.length) throw new Error(`stat ${DEEP_PATH}: not the bottom layer's file (size ${st.size})`)
    },
  }
}

/** Refs of the big file's chunks, derived from its content: xxh64 of each chunk and collision slot 0 (random data has no collisions). */
function bigRefs(store: Store): { refs: Buffer[]; data: Buffer } {
  const data = bigData()
  const refs: Buffer[] = []
  for (let off = 0; off < data.length; off += CHUNK) refs.push(Buffer.concat([store.chunks.hash(data.subarray(off, off + CHUNK)), Buffer.of(0)]))
  return { refs, data }
}

export function chunkReadCases(store: Store): MicroCase[] {
  const { refs, data } = bigRefs(store)
  const hex = refs.map((r) => r.toString('hex'))
  let next = 0
  const checkAll = async (): Promise<void> => {
    for (let i = 0; i < refs.length; i += 97) {
      if (!(await store.chunks.get(refs[i])).equals(data.subarray(i * CHUNK, (i + 1) * CHUNK))) throw new Error(`chunk ${i} of /big: wrong content`)
    }
  }
  return [
    {
      id: 'micro-chunkread',
      title: 'ChunkStore.get of a 64 KiB chunk, in the chunk cache',
      notes: ["The same chunk every time, read once before timing, so it comes from the engine's chunk cache (an LRU of 256 MiB)."],
      op: async () => { await store.chunks.get(refs[0]) },
      left: () => Infinity,
      check: checkAll,
    },
    {
      id: 'micro-chunkread-uncached',
      title: 'ChunkStore.get of a 64 KiB chunk not in the chunk cache',
      notes: [
        "Each operation drops the chunk from the engine's cache (ChunkStore.forget, a map delete, timed with it) and reads it from the store: the 1,024 chunks of a 64 MiB file in turn, kept in the store's pack files. Those files are in the OS page cache: this is the engine's read path without a disk wait.",
      ],
      op: async () => {
        const i = next++ % refs.length
        store.chunks.forget(hex[i])
        await store.chunks.get(refs[i])
      },
      left: () => Infinity,
      check: async () => {
        await checkAll()
        const before = store.chunks.cachedBytes
        store.chunks.forget(hex[0])
        if (store.chunks.cachedBytes !== before - CHUNK) throw new Error('ChunkStore.forget did not drop a cached chunk: the uncached case would read from the cache')
      },
    },
  ]
}

/** A pool of actives prepared off the clock, used one per operation. */
function pool(make: (key: string) => Promise<void>): { take(): string; last(): string; replenish(n: number): Promise<void>; left(): number } {
  const ready: string[] = []
  let head = 0 // an index, not shift(): the timed take must not move the whole array
  let taken: string | undefined
  return {
    take: () => {
      taken = ready[head++]
      if (taken === undefined) throw new Error('no prepared snapshot left for the next operation')
      return taken
    },
    last: () => {
      if (taken === undefined) throw new Error('no operation ran')
      return taken
    },
    replenish: async (n) => { for (let i = 0; i < n; i++) { const key = `p${ready.length}`; await make(key); ready.push(key) } },
    left: () => ready.length - head,
  }
}

export function copyUpCase(store: Store): MicroCase {
  const p = pool(async (key) => {
    await store.prepare(`cu-${key}`, 'big')
    await store.fs(`cu-${key}`).stat('/') // opens the snapshot's overlay off the clock
  })
  return {
    id: 'micro-copyup',
    title: `Copy-up: open r+ and close of a ${BIG_BYTES / MiB} MiB lower file in a fresh active snapshot`,
    notes: [
      `Each operation uses a fresh active snapshot of a snapshot holding the file, prepared (and its overlay opened with a stat of /) before timing; the time is the lookup, the copy-up (a metadata write: the upper inode points at the lower file's chunks) and the close. Kernel overlayfs copies the whole file on such an open.`,
    ],
    op: async () => {
      const h = await store.fs(`cu-${p.take()}`).open('/big', 'r+')
      await h.close()
    },
    replenish: p.replenish,
    left: p.left,
    check: async () => {
      const key = p.last()
      const usage = await store.usage(`cu-${key}`)
      const st = await store.fs(`cu-${key}`).stat('/big')
      if (usage.inodes < 1 || st.size !== BIG_BYTES) throw new Error(`copy-up in cu-${key}: ${usage.inodes} entries in the upper layer, /big of ${st.size} bytes`)
    },
  }
}

export function commitCase(store: Store): MicroCase {
  const content = (key: string): string => `changed in ${key}\n`
  const p = pool(async (key) => {
    await store.prepare(`cm-${key}`, 'big')
    await store.fs(`cm-${key}`).writeFile('/small', content(key))
  })
  return {
    id: 'micro-commit',
    title: 'Commit of an active snapshot with one changed small file',
    notes: ['Each operation commits a fresh active snapshot (of a snapshot with a 64 MiB file and a small one) in which the small file was rewritten before timing. The commit is synced to disk.'],
    op: async () => {
      const key = p.take()
      await store.commit(`c-${key}`, `cm-${key}`)
    },
    replenish: p.replenish,
    left: p.left,
    check: async () => {
      const key = p.last()
      const info = await store.stat(`c-${key}`)
      const got = Buffer.from(await store.fs(`c-${key}`).readFile('/small')).toString()
      if (info.kind !== 'committed' || got !== content(key)) throw new Error(`commit c-${key}: kind ${info.kind}, /small holds ${JSON.stringify(got)}`)
    },
  }
}
