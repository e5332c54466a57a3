import { closeSync, openSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { StoreError, isCode } from '../errors.js'

/**
 * Disk space as the store sees it: telling a full disk apart from other write errors, and the
 * reserve file that lets a store on a full disk still be opened, read and garbage collected.
 *
 * Why a reserve: opening LevelDB replays its log into a memtable and writes that as a new
 * table file, a new log and a new MANIFEST before anything can be read; on a disk with no
 * space left that open fails, and with it every command, `gc` included. So a store keeps a
 * file of RESERVE_BYTES that it gives back to the filesystem when an open, or the reopen that
 * lets writes resume after a failed one, has no room; the next open that finds room makes it
 * again.
 */
export const RESERVE_FILE = 'RESERVE'
export const RESERVE_BYTES = 16 * 1024 * 1024
/** Room besides the log's replay that a reopen needs: the new MANIFEST, log and CURRENT. */
const REOPEN_MARGIN = 1024 * 1024

/** The error is the filesystem saying it is full (node's errno, or LevelDB's "IO error: …: No space left on device"). */
export function isNoSpace(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (isCode(e, 'ENOSPC') || isCode(e, 'EDQUOT')) return true
    if (/No space left on device|Disk quota exceeded/i.test(String((e as { message?: unknown }).message ?? ''))) return true
  }
  return false
}

export function noSpaceError(dir: string, what: string): StoreError {
  return new StoreError('ENOSPC', `no space left on device for store ${dir}: ${what}`)
}

/**
 * Bytes this process may still write to the filesystem holding `dir`, to be safe: root may use
 * the blocks kept for it (f_bfree), but f_bfree also counts blocks the filesystem keeps for its
 * own metadata that no one can write (ext4: up to 4 MiB), so that much is not counted.
 */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir)
  const free = (process.getuid?.() === 0 ? s.bfree : s.bavail) * s.bsize
  return Math.max(0, free - FS_OWN_BYTES)
}
const FS_OWN_BYTES = 8 * 1024 * 1024

/** What reopening LevelDB in `dbDir` writes at most: its logs replayed into a table, plus the new MANIFEST and log. */
export function reopenBytes(dbDir: string): number {
  return REOPEN_MARGIN + sizeOf(dbDir, (name) => name.endsWith('.log') || name.startsWith('MANIFEST-'))
}

/** Bytes in LevelDB's logs: what the next open replays and writes out as a table. */
export function logBytes(dbDir: string): number {
  return sizeOf(dbDir, (name) => name.endsWith('.log'))
}

function sizeOf(dir: string, which: (name: string) => boolean): number {
  let bytes = 0
  for (const name of readdirSync(dir)) if (which(name)) bytes += statSync(join(dir, name)).size
  return bytes
}

/** Gives the reserve's space back to the filesystem; false when there was none to give. */
export function releaseReserve(storeDir: string): boolean {
  try {
    rmSync(join(storeDir, RESERVE_FILE))
    return true
  } catch {
    return false
  }
}

/**
 * Makes the reserve file when it is missing (or cut short) and the disk has room for it several times over
 * (a nearly full disk is not made fuller). Written out, not sparse: the blocks must be taken.
 * Best effort: a store without its reserve works, it only cannot be opened on a full disk.
 */
export function keepReserve(storeDir: string): void {
  const path = join(storeDir, RESERVE_FILE)
  try {
    if (statSync(path).size === RESERVE_BYTES) return
  } catch { /* missing: make it below */ }
  const tmp = `${path}.tmp`
  try {
    if (freeBytes(storeDir) < 4 * RESERVE_BYTES) return
    const fd = openSync(tmp, 'w', 0o600)
    try {
      const zeros = Buffer.alloc(1024 * 1024)
      // no fsync: the filesystem takes the blocks at write (ext4 reserves them for delayed
      // allocation), and one cut short by a crash is made again by the next open
      for (let done = 0; done < RESERVE_BYTES; done += zeros.length) writeSync(fd, zeros, 0, zeros.length, done)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch {
    rmSync(tmp, { force: true })
  }
}

/**
 * Runs `fn` (an open of LevelDB); when it fails for want of space, gives back the reserve and
 * runs it once more. The second failure is the one thrown.
 */
export async function withReserve<T>(storeDir: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (!isNoSpace(err) || !releaseReserve(storeDir)) throw err
    return await fn()
  }
}
