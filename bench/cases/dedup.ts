import { Store } from '../../engine/index.js'
import type { BenchCase, CaseContext, CaseResult } from '../lib/case.js'
import { writeFileInPieces } from '../lib/bigfile.js'
import { Prng } from '../lib/random.js'
import { scratchDir } from '../lib/scratch.js'
import { allChunkBytes, chunkKeys, newChunks, MiB } from '../lib/storage.js'
import { fmt } from '../lib/stats.js'

/** Identical content is stored once, whether the copies share a snapshot or not. */
async function run(ctx: CaseContext): Promise<CaseResult> {
  const size = 64 * MiB
  const scratch = await scratchDir(ctx.args.dir, 'dedup')
  const store = await Store.open({ path: scratch.path })
  try {
    ctx.log('dedup: two identical 64 MiB files')
    const data = new Prng(7).bytes(size)
    await store.prepare('w1')
    await writeFileInPieces(store.fs('w1'), '/a', data)
    await writeFileInPieces(store.fs('w1'), '/b', data)
    await store.commit('one', 'w1')
    const afterOne = await allChunkBytes(store)

    let before = await chunkKeys(store)
    await store.prepare('w2')
    await writeFileInPieces(store.fs('w2'), '/c', data)
    await store.commit('two', 'w2')
    const unrelated = await newChunks(store, before)

    before = await chunkKeys(store)
    await store.prepare('w3', 'one')
    await writeFileInPieces(store.fs('w3'), '/d', data)
    await store.commit('three', 'w3')
    const child = await newChunks(store, before)

    const total = await allChunkBytes(store)
    const mib = (n: number): string => fmt(n / MiB)
    return {
      tables: [{
        title: 'Dedup: identical 64 MiB files (random content), chunk data stored',
        headers: ['case', 'chunk keys', 'chunk MiB', 'vs 64 MiB'],
        rows: [
          ['two files in one snapshot', String(afterOne.keys), mib(afterOne.valueBytes), fmt(afterOne.valueBytes / size)],
          ['+ same file in an unrelated snapshot (growth)', String(unrelated.keys), mib(unrelated.valueBytes), fmt(unrelated.valueBytes / size)],
          ['+ same file in a child snapshot (growth)', String(child.keys), mib(child.valueBytes), fmt(child.valueBytes / size)],
          ['store total, four copies', String(total.keys), mib(total.valueBytes), fmt(total.valueBytes / size)],
        ],
        notes: ['A file of up to 1024 chunks (64 MiB) keeps its chunk refs in its inode record, so only data chunks appear here.'],
      }],
      raw: { size, afterOne, unrelated, child, total },
    }
  } finally {
    await store.close()
    await scratch.remove()
  }
}

export const dedupCase: BenchCase = { name: 'dedup', title: 'Dedup of identical files', run }
