import type { Db } from './store/db.js'
import { snapshotKey } from './store/keys.js'
import type { SnapshotRecord } from './store/records.js'
import { fsError } from './errors.js'
import type { Creds } from './types.js'

/** Checks of caller input shared by the store's calls and the importer, so both answer alike. */

const MAX_KEY = 1024

export function checkKey(key: unknown, syscall: string): string {
  if (typeof key !== 'string' || key === '') throw fsError('EINVAL', syscall, String(key), 'snapshot key must be a non-empty string')
  if (key.includes('\0') || key.length > MAX_KEY) throw fsError('EINVAL', syscall, key, `snapshot key must be at most ${MAX_KEY} characters without NUL`)
  return key
}

/**
 * Keys of the temporary active snapshots that imports fill before committing them under the
 * requested name. The prefix is the store's own: a snapshot under it that no import of the
 * process holding the store is filling is left over from a killed one, and gc removes it.
 */
export const IMPORT_KEY_PREFIX = '.import-'

export const isImportKey = (key: string): boolean => key.startsWith(IMPORT_KEY_PREFIX)

/** Refuses a name under the prefix reserved for imports' temporary snapshots. */
export function assertNotReserved(key: string, syscall: string): void {
  if (isImportKey(key)) throw fsError('EINVAL', syscall, key, `names starting with '${IMPORT_KEY_PREFIX}' are reserved for the temporary snapshots of imports`)
}

/** Refuses a key or name that a snapshot has already, or that is reserved. */
export async function assertFree(db: Db, key: string, syscall: string): Promise<void> {
  assertNotReserved(checkKey(key, syscall), syscall)
  if (await db.get(snapshotKey(key))) throw fsError('EEXIST', syscall, key, `snapshot '${key}' already exists`)
}

/** Only committed snapshots can be parents. */
export function assertCommittedParent(r: SnapshotRecord, parent: string, syscall: string): void {
  if (r.kind !== 'committed') throw fsError('EINVAL', syscall, parent, `parent '${parent}' is ${r.kind}; only committed snapshots can be parents`)
}

/** A copy of valid labels ({} when none are given). */
export function checkLabels(labels: unknown, syscall: string, key: string): Record<string, string> {
  if (labels === undefined) return {}
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw fsError('EINVAL', syscall, key, 'labels must be an object of strings')
  for (const [k, v] of Object.entries(labels)) {
    if (k === '' || typeof v !== 'string') throw fsError('EINVAL', syscall, key, `label '${k}' must have a non-empty name and a string value`)
  }
  return { ...(labels as Record<string, string>) }
}

export function checkCreds(c: Creds, key: string): Creds {
  const ok = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0 && (n as number) < 2 ** 32
  const groups: unknown = c.groups ?? []
  if (!ok(c.uid) || !ok(c.gid) || !Array.isArray(groups) || !groups.every(ok)) throw fsError('EINVAL', 'open', key, 'creds need integer uid, gid and groups')
  return { uid: c.uid, gid: c.gid, groups: [...(c.groups ?? [])], ...(c.pathWalked === true ? { pathWalked: true } : {}) }
}

export function checkProgress(progress: unknown, syscall: string, path: string): void {
  if (progress !== undefined && typeof progress !== 'function') throw fsError('EINVAL', syscall, path, 'progress must be a function')
}
