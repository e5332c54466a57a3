import type { SnapshotFs } from '../../engine/index.js'
import { MiB } from './storage.js'

/** Writes `data` to a new file through the store's file API in `piece`-sized writes, as an application would. */
export async function writeFileInPieces(fs: SnapshotFs, path: string, data: Buffer, piece = MiB): Promise<void> {
  const h = await fs.open(path, 'w')
  try {
    for (let pos = 0; pos < data.length; pos += piece) await h.write(data, pos, Math.min(piece, data.length - pos), pos)
  } finally {
    await h.close()
  }
}
