/**
 * A seeded pseudo-random generator (sfc32). The same seed always gives the same sequence, so a
 * failing run is reproduced from its seed alone.
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = seed >>> 0
    // the first outputs of sfc32 still show the seed; skip them
    for (let i = 0; i < 16; i++) this.next()
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x100000000) * n)
  }

  /** An integer in [lo, hi], both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance(p: number): boolean {
    return this.next() / 0x100000000 < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.int(items.length)]
  }

  weighted<T>(choices: ReadonlyArray<readonly [T, number]>): T {
    const total = choices.reduce((s, [, w]) => s + w, 0)
    let r = (this.next() / 0x100000000) * total
    for (const [v, w] of choices) {
      if (r < w) return v
      r -= w
    }
    return choices[choices.length - 1][0]
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i)
    for (; i < n; i++) out[i] = this.next() & 0xff
    return out
  }
}
