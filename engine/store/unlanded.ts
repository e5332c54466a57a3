/** One write of a batch, in the form LevelDB's batch takes. */
export type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string }

/**
 * The writes that `Db` has queued (or kept after a failure) but LevelDB does not hold yet: the
 * newest op per key, so that every read sees a write as soon as it was queued. An op stays
 * until the batch holding it has landed, and leaves only if no later op replaced it.
 */
export class Unlanded {
  private readonly byKey = new Map<string, BatchOp>()

  add(ops: readonly BatchOp[]): void {
    for (const op of ops) this.byKey.set(op.key, op)
  }

  /** The ops of a batch LevelDB now holds. */
  landed(ops: readonly BatchOp[]): void {
    for (const op of ops) if (this.byKey.get(op.key) === op) this.byKey.delete(op.key)
  }

  /** Starts over from the ops still to be written, oldest first (after a failed batch some were dropped). */
  reset(batches: ReadonlyArray<readonly BatchOp[]>): void {
    this.byKey.clear()
    for (const ops of batches) this.add(ops)
  }

  /** The queued value of `key`: a buffer, null when it is deleted, undefined when no write is queued. */
  value(key: string): Buffer | null | undefined {
    const op = this.byKey.get(key)
    if (op === undefined) return undefined
    return op.type === 'put' ? op.value : null
  }

  /** The queued ops on keys in (gt, lt), in LevelDB's key order. */
  inRange(gt: string, lt: string): Array<[string, Buffer | null]> {
    const out: Array<[string, Buffer | null]> = []
    if (this.byKey.size === 0) return out
    for (const [k, op] of this.byKey) {
      if (compareKeys(k, gt) > 0 && compareKeys(k, lt) < 0) out.push([k, op.type === 'put' ? op.value : null])
    }
    return out.sort((a, b) => compareKeys(a[0], b[0]))
  }
}

/**
 * The writes of several batches as one batch: a key written more than once keeps only its last
 * op. The batches are written together, atomically, so LevelDB ends with the same contents; an
 * operation's writes (a file's record rewritten by each of tar's chown, chmod and utimes, a
 * directory's record by every name made in it) come one after another, and most of a group's
 * writes replace one written a moment before.
 */
export function lastOpPerKey(batches: ReadonlyArray<readonly BatchOp[]>): BatchOp[] {
  const byKey = new Map<string, BatchOp>()
  for (const ops of batches) for (const op of ops) byKey.set(op.key, op)
  return [...byKey.values()]
}

/**
 * Orders keys as LevelDB does: by their UTF-8 bytes, which is code point order. JavaScript's `<`
 * compares UTF-16 code units, which puts U+E000..U+FFFF after the surrogates of higher code
 * points; shifting the two ranges past each other gives code point order.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codePointRank(x) - codePointRank(y)
  }
  return a.length - b.length
}

const codePointRank = (unit: number): number => (unit >= 0xd800 && unit < 0xe000 ? unit + 0x2000 : unit >= 0xe000 ? unit - 0x800 : unit)

/**
 * Merges `queued` (sorted, as `inRange` gives it) into the pairs LevelDB yields in key order:
 * a queued value replaces LevelDB's, a queued delete hides it.
 */
export async function* mergeQueued(stored: AsyncIterable<[string, Buffer]>, queued: Array<[string, Buffer | null]>): AsyncGenerator<[string, Buffer]> {
  let q = 0
  for await (const [k, v] of stored) {
    for (; q < queued.length && compareKeys(queued[q][0], k) < 0; q++) {
      const [qk, qv] = queued[q]
      if (qv !== null) yield [qk, qv]
    }
    if (q < queued.length && queued[q][0] === k) {
      const qv = queued[q++][1]
      if (qv !== null) yield [k, qv]
      continue
    }
    yield [k, v]
  }
  for (; q < queued.length; q++) {
    const [qk, qv] = queued[q]
    if (qv !== null) yield [qk, qv]
  }
}
