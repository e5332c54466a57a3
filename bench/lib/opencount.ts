import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'

type AnyFn = (...args: unknown[]) => unknown

/** node:fs entry points that open a file for its data. */
const SYNC_AND_CALLBACK = ['open', 'openSync', 'readFile', 'readFileSync', 'createReadStream'] as const
const PROMISES = ['open', 'readFile'] as const

/**
 * Counts files under `root` opened for reading while `fn` runs, by wrapping node:fs (and its ESM
 * bindings) for that time. Proves that a re-snapshot of an unchanged tree reads no file data.
 */
export async function countOpens<T>(root: string, fn: () => Promise<T>): Promise<{ result: T; opens: number }> {
  let opens = 0
  const seen = (p: unknown): void => {
    const s = typeof p === 'string' ? p : p instanceof URL ? p.pathname : Buffer.isBuffer(p) ? p.toString() : undefined
    if (s !== undefined && s.startsWith(root)) opens++
  }
  const restore: Array<() => void> = []
  const wrap = (obj: Record<string, unknown>, name: string): void => {
    const orig = obj[name] as AnyFn
    obj[name] = function (this: unknown, ...args: unknown[]) { seen(args[0]); return orig.apply(this, args) }
    restore.push(() => { obj[name] = orig })
  }
  for (const n of SYNC_AND_CALLBACK) wrap(fs as unknown as Record<string, unknown>, n)
  for (const n of PROMISES) wrap(fsp as unknown as Record<string, unknown>, n)
  syncBuiltinESMExports()
  try {
    const result = await fn()
    return { result, opens }
  } finally {
    for (const r of restore) r()
    syncBuiltinESMExports()
  }
}
