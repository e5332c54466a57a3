import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from '../engine/index.js'

const MiB = 1024 * 1024
const PREFIX = 'strata-warmup-'
/** A warm-up takes well under a second; an older dir is what a daemon killed during one left. */
const LEFTOVER_AGE_MS = 10 * 60 * 1000

/**
 * Runs the engine's write path once on a throwaway store, in the background once a writable
 * mount is up. V8 compiles each function when it first runs, and the first copy-up, write and
 * fsync through a fresh daemon ran a few times slower than the same steps a second time (about
 * 9–26 ms against 4–5 ms for a 4 KiB write into a 1 GiB lower file): that first write is often
 * the one a user waits for. The file is sparse and large enough to have pages of chunk refs,
 * like the big files whose copy-up this is about; it costs a few MiB of temp space for a moment.
 */
export async function warmWritePath(): Promise<void> {
  await removeLeftovers()
  const dir = await mkdtemp(join(tmpdir(), PREFIX))
  try {
    const store = await Store.open({ path: dir, cacheBytes: 4 * MiB })
    try {
      await store.prepare('lower')
      const fs = store.fs('lower')
      await fs.writeFile('/f', Buffer.alloc(256 * 1024, 1))
      await fs.truncate('/f', 80 * MiB)
      await store.commit('base', 'lower')
      await store.prepare('upper', 'base')
      const upper = store.fs('upper')
      await upper.stat('/f')
      const h = await upper.open('/f', 'r+')
      try {
        const page = Buffer.alloc(4096, 2)
        await h.write(page, 0, page.length, 40 * MiB + 12345)
        await h.sync()
        await h.read(Buffer.alloc(page.length), 0, page.length, 40 * MiB + 12345)
      } finally {
        await h.close()
      }
    } finally {
      await store.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function removeLeftovers(): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue
    const path = join(tmpdir(), name)
    try {
      if (Date.now() - (await stat(path)).mtimeMs > LEFTOVER_AGE_MS) await rm(path, { recursive: true, force: true })
    } catch {
      // gone already, or not ours to remove
    }
  }
}
