import type { Store } from '../store.js'
import type { ChunkStore } from './chunks.js'
import { refHex } from './chunks.js'
import { inlineIntact, referencedChunks } from './filedata.js'
import type { InodeRecord, SnapshotRecord } from './records.js'
import { TreeWalker } from './treewalk.js'
import type { FsckReport } from '../types.js'

/**
 * What fsck found damaged, for `locateDamage` to name the snapshots and paths that read it:
 * a damaged chunk id alone tells an operator nothing about what was lost.
 */
export interface Damage {
  /** Ids of chunks that files use and that are missing, unreadable or fail their hash. */
  chunks: Set<string>
  /** Whether some inode's data could not be checked or failed its checksum (inline, chunk list). */
  inodes: boolean
  /** Inline contents written before format 3: no checksum to check them against. */
  unverifiable: number
}

export const newDamage = (): Damage => ({ chunks: new Set(), inodes: false, unverifiable: 0 })

/** fsck --verify-data of one inode's inline content against the checksum written with it. */
export function checkInline(layer: string, ino: number, rec: InodeRecord, chunks: ChunkStore, problems: string[], damage: Damage): void {
  const intact = inlineIntact(rec, chunks)
  if (intact === undefined) damage.unverifiable++
  if (intact !== false) return
  problems.push(`layer ${layer} inode ${ino}: inline content does not match its checksum`)
  damage.inodes = true
}

/** Adds to fsck's report where the damage it found is read, and what it could not verify. */
export async function reportDamage(store: Store, report: FsckReport, damage: Damage): Promise<FsckReport> {
  const located = await locateDamage(store, damage)
  const problems = [...report.problems, ...located]
  const checked = damage.unverifiable > 0 ? { ...report.checked, unverifiable: damage.unverifiable } : report.checked
  return { ...report, ok: problems.length === 0, problems, checked }
}

/**
 * One line per snapshot and path whose file reads damaged data. Walks the merged tree of every
 * snapshot (a damaged chunk may be shared by many), so it runs only when something is damaged.
 */
export async function locateDamage(store: Store, damage: Damage): Promise<string[]> {
  if (damage.chunks.size === 0 && !damage.inodes) return []
  const records: Array<[string, SnapshotRecord]> = []
  for await (const entry of store.records()) records.push(entry)
  const walker = new TreeWalker(store, (rec) => fileDamage(rec, store.chunks, damage), (message) => `cannot be read: ${message}`)
  const out: string[] = []
  for (const [name, r] of records) {
    try {
      for (const p of await walker.problems(name, r)) out.push(`snapshot '${name}': '${p.path}' ${p.problem}`)
    } catch (err) {
      out.push(`snapshot '${name}': its tree cannot be walked: ${(err as Error).message}`)
    }
  }
  return out
}

/** Why a file's data is damaged, or undefined when it reads none of the damage. */
async function fileDamage(rec: InodeRecord, chunks: ChunkStore, damage: Damage): Promise<string | undefined> {
  if (inlineIntact(rec, chunks) === false) return 'has damaged inline content'
  if (!rec.chunks && !rec.pages) return undefined
  let refs: Buffer[]
  try {
    refs = await referencedChunks(rec, chunks)
  } catch (err) {
    return `has a chunk list that cannot be read: ${(err as Error).message}`
  }
  const bad = [...new Set(refs.map(refHex).filter((hex) => damage.chunks.has(hex)))]
  if (bad.length === 0) return undefined
  return bad.length === 1 ? `reads chunk ${bad[0]}, which is damaged or missing` : `reads chunks ${bad.join(', ')}, which are damaged or missing`
}
