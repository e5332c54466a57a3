import { cpSync, existsSync, fsyncSync, mkdirSync, openSync, closeSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Level as LevelDB } from 'level'
import { StoreError, isCode } from '../errors.js'
import { decode, encode } from './codec.js'
import { FORMAT_VERSION, lockedMessage } from './db.js'
import { COUNTER_PREFIX, ENTRY_PREFIX, FORMAT_KEY, INODE_PREFIX, LAYER_PREFIX, NODE_PREFIX, SNAPSHOT_PREFIX, counterKey } from './keys.js'
import type { IndexNodeRecord } from './mergeindex.js'
import type { EntryRecord, SnapshotRecord } from './records.js'
import type { RepairReport } from '../types.js'

/**
 * The LevelDB half of `Store.repair`: sets `db/` aside, has LevelDB rebuild its database from every
 * table and log it can still read, and makes the salvaged records a store again (format record,
 * id counters). What the salvage lost is found afterwards, on the opened store (lossreport.ts).
 */

type Level = LevelDB<string, Buffer>
/** The static repair of classic-level, the database `level` is on Node (its typings omit it). */
type Repairable = { repair(location: string): Promise<void> }

/** What rebuilding the database did: the part of a `RepairReport` that comes before the loss walk. */
export type Rebuilt = Pick<RepairReport, 'backup' | 'found' | 'lostTables' | 'setAside' | 'records' | 'rewritten'>

export async function rebuildDatabase(storeDir: string): Promise<Rebuilt> {
  const dbDir = join(storeDir, 'db')
  // a mistyped path must not become a new, empty store
  if (!isDir(dbDir) && !isDir(join(storeDir, 'packs'))) throw new StoreError('ENOENT', `cannot repair ${storeDir}: no store there (neither db/ nor packs/)`)
  const backup = existsSync(dbDir) ? copyAside(storeDir, dbDir) : undefined
  let found: string | undefined
  try {
    found = await refuseIfHeld(storeDir, dbDir)
  } catch (err) {
    // a copy of a database another process is writing is worth nothing
    if (backup) rmSync(backup, { recursive: true, force: true })
    throw err
  }
  mkdirSync(dbDir, { recursive: true })
  const lostBefore = new Set(lostFiles(dbDir))
  try {
    await (LevelDB as unknown as Repairable).repair(dbDir)
  } catch (err) {
    throw new StoreError('EIO', `cannot repair store ${storeDir}: ${(err as Error).message}${backup ? `; db/ as it was is in ${backup}` : ''}`)
  }
  const setAside = lostFiles(dbDir).filter((n) => !lostBefore.has(n)).map((n) => `db/lost/${n}`)
  const lostTables = missingTables(found) + setAside.filter((f) => TABLE.test(f)).length
  const level: Level = new LevelDB<string, Buffer>(dbDir, { keyEncoding: 'utf8', valueEncoding: 'buffer', createIfMissing: false })
  await level.open()
  try {
    const { records, rewritten } = await restoreStoreRecords(level)
    return { backup, found, lostTables, setAside, records, rewritten }
  } finally {
    await level.close()
  }
}

/** A durable copy of `db/` next to it, so that nothing the repair does can lose more than the damage did. */
function copyAside(storeDir: string, dbDir: string): string {
  const backup = join(storeDir, `db.before-repair-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  cpSync(dbDir, backup, { recursive: true, errorOnExist: true, force: false, filter: (src) => !src.endsWith('/LOCK') })
  syncTree(backup)
  syncPath(storeDir)
  return backup
}

function syncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) syncTree(p)
    else syncPath(p)
  }
  syncPath(dir)
}

function syncPath(p: string): void {
  const fd = openSync(p, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * LevelDB's repair takes no lock: it would rewrite the database under a process using it. An open
 * attempt finds out: it fails on the lock first when another process holds it, and it never
 * creates a database (a damaged one fails to open, which is why we are here).
 */
async function refuseIfHeld(storeDir: string, dbDir: string): Promise<string | undefined> {
  const probe: Level = new LevelDB<string, Buffer>(dbDir, { createIfMissing: false })
  try {
    await probe.open()
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    if (isCode(err, 'LEVEL_LOCKED') || isCode(cause, 'LEVEL_LOCKED')) throw new StoreError('EBUSY', `cannot repair: ${lockedMessage(storeDir)}`)
    // what was wrong, as LevelDB says it: the report repeats it
    return (cause as Error | undefined)?.message ?? (err as Error).message
  }
  await probe.close()
  return undefined
}

const TABLE = /\.(ldb|sst)$/

/** Tables the manifest lists but the directory lacks, as LevelDB's open reports them ("Corruption: 2 missing files; e.g.: …"). */
function missingTables(found: string | undefined): number {
  const m = found === undefined ? null : /(\d+) missing files/.exec(found)
  return m ? Number(m[1]) : 0
}

function lostFiles(dbDir: string): string[] {
  try {
    return readdirSync(join(dbDir, 'lost'))
  } catch (err) {
    if (isCode(err, 'ENOENT')) return []
    throw err
  }
}

/** Counter name and how an id in use reaches it: the counters must stay above every id still named. */
const idOfLayer = (layer: string): number => (/^l[0-9a-f]+$/.test(layer) ? parseInt(layer.slice(1), 16) : -1)
const idOfNode = (node: string): number => (/^[0-9a-f]+$/.test(node) ? parseInt(node, 16) : -1)

/**
 * Counts the salvaged records by prefix, writes the format record back if its table was lost,
 * and raises each id counter above every id a salvaged record uses: a counter whose record was
 * lost (or is older than the ids in use) would hand out ids that overwrite surviving layers,
 * inodes or index nodes.
 */
async function restoreStoreRecords(level: Level): Promise<{ records: Record<string, number>; rewritten: string[] }> {
  const records: Record<string, number> = {}
  const max = { ino: 0, layer: 0, node: 0 }
  const counters: Record<string, number> = {}
  let format = false
  const seeLayer = (l: string | undefined): void => { if (l !== undefined) max.layer = Math.max(max.layer, idOfLayer(l)) }
  const seeNode = (n: string | undefined): void => { if (n !== undefined) max.node = Math.max(max.node, idOfNode(n)) }
  const seeIno = (i: number): void => { if (Number.isSafeInteger(i)) max.ino = Math.max(max.ino, i) }
  for await (const [key, value] of level.iterator()) {
    if (key === FORMAT_KEY) { format = true; continue }
    const prefix = key.slice(0, key.indexOf('/') + 1) || key
    records[prefix] = (records[prefix] ?? 0) + 1
    try {
      tally(key, value)
    } catch {
      // a record that does not decode names no id; fsck and the loss report show its snapshot
    }
  }
  function tally(key: string, value: Buffer): void {
    const parts = key.split('/')
    if (key.startsWith(COUNTER_PREFIX)) counters[parts[1]] = decode<number>(value)
    else if (key.startsWith(LAYER_PREFIX)) seeLayer(parts[1])
    else if (key.startsWith(INODE_PREFIX)) { seeLayer(parts[1]); seeIno(parseInt(parts[2], 16)) }
    else if (key.startsWith(ENTRY_PREFIX)) { seeLayer(parts[1]); seeIno(parseInt(parts[2], 16)); seeIno(decode<EntryRecord>(value)[0]) }
    else if (key.startsWith(NODE_PREFIX)) {
      seeNode(parts[1])
      const n = decode<IndexNodeRecord>(value)
      if ('e' in n) for (const e of n.e) { seeIno(e[1]); seeLayer(e[3]); seeNode(e[4]) }
      else for (const p of n.p) seeNode(p[1])
    } else if (key.startsWith(SNAPSHOT_PREFIX)) {
      const r = decode<SnapshotRecord>(value)
      seeLayer(r.layer)
      seeNode(r.index)
      for (const [ino, layer] of Object.entries(r.links ?? {})) { seeIno(Number(ino)); seeLayer(layer) }
    }
  }
  const rewritten: string[] = []
  const batch = level.batch()
  const dataRecords = Object.values(records).reduce((a, b) => a + b, 0)
  // an empty salvage becomes an empty store: the user asked to accept the loss (the report lists the packs gc will delete)
  if (!format) {
    batch.put(FORMAT_KEY, encode({ format: FORMAT_VERSION }))
    rewritten.push(`format record (version ${FORMAT_VERSION})`)
  }
  for (const name of ['ino', 'layer', 'node'] as const) {
    const next = max[name] + 1
    if (dataRecords > 0 && (counters[name] ?? 0) < next) {
      batch.put(counterKey(name), encode(next))
      rewritten.push(`counter ${name}: ${counters[name] ?? 'lost'} -> ${next}`)
    }
  }
  await batch.write({ sync: true })
  return { records, rewritten }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}
