import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { StoreError, isCode } from '../errors.js'

/**
 * What a store directory holds before LevelDB is opened on it. LevelDB told to create a missing
 * database does so wherever `db/CURRENT` is absent, and then deletes every table file the new,
 * empty database does not list: a store that lost that one 16-byte file would open empty, its
 * records would be deleted, and the next gc would delete every pack. So the database is created
 * only for a store that holds nothing yet; a store with data but no readable database is refused.
 */

/** Files LevelDB writes that hold records (tables, logs, manifests). */
const LEVEL_DATA = /^(\d+\.(ldb|sst|log)|MANIFEST-\d+)$/
const PACK_FILE = /\.pack$/

const REPAIR_HINT = 'nothing was changed; `strata fsck --repair` rebuilds the database from what is left'

function namesIn(storeDir: string, sub: string): string[] {
  try {
    return readdirSync(join(storeDir, sub))
  } catch (err) {
    if (isCode(err, 'ENOENT')) return []
    throw new StoreError('EIO', `cannot open store ${storeDir}: ${(err as Error).message}`)
  }
}

/** The pack files in a store's `packs/` directory. */
export function packFilesIn(storeDir: string): string[] {
  return namesIn(storeDir, 'packs').filter((n) => PACK_FILE.test(n))
}

/**
 * Whether the store at `storeDir` is new (LevelDB may create its database) or has a database to
 * open. Refuses, with EFORMAT and a message naming what is missing, a store whose `db/` holds
 * LevelDB files without `CURRENT`, or whose packs have no database at all. Changes nothing.
 */
export function checkBeforeOpen(storeDir: string): 'new' | 'existing' {
  const names = namesIn(storeDir, 'db')
  if (names.includes('CURRENT')) return 'existing'
  const data = names.filter((n) => LEVEL_DATA.test(n))
  if (data.length > 0) {
    throw new StoreError('EFORMAT', `cannot open store ${storeDir}: db/CURRENT is missing, but db/ holds ${data.length} LevelDB file(s) (${data.slice(0, 4).join(', ')}${data.length > 4 ? ', …' : ''}); ${REPAIR_HINT}`)
  }
  refuseUnindexedPacks(storeDir)
  return 'new'
}

/**
 * Refuses a store whose database holds no records while `packs/` holds chunk data: a database
 * that was lost or replaced, not a new store (gc would delete every pack as unreferenced).
 */
export function refuseUnindexedPacks(storeDir: string): void {
  const packs = packFilesIn(storeDir)
  if (packs.length === 0) return
  throw new StoreError(
    'EFORMAT',
    `cannot open store ${storeDir}: the database (db/) holds no records, but packs/ holds ${packs.length} pack file(s); ` +
      'the database is missing or was replaced, and packs cannot be read without it. Nothing was changed; restore db/ from a copy, ' +
      'or run `strata fsck --repair` to accept the loss (it reports what is gone)',
  )
}
