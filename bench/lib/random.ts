import { createCipheriv, createHash, type Cipher } from 'node:crypto'

const STEP = 1024 * 1024
const ZEROES = Buffer.alloc(STEP)

/**
 * Repeatable non-repeating filler: the AES-128-CTR keystream of a seed (over 1 GB/s, several times
 * a JS PRNG). Bench data must neither dedup nor compress, and the same seed must give the same
 * bytes (the dedup case writes identical files).
 */
export class Prng {
  private readonly cipher: Cipher

  constructor(seed: number) {
    const key = createHash('sha256').update(`strata-bench-${seed}`).digest()
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  }

  /** Fills `buf` with the next pseudo-random bytes. */
  fill(buf: Uint8Array): Uint8Array {
    for (let off = 0; off < buf.byteLength; off += STEP) {
      const n = Math.min(STEP, buf.byteLength - off)
      buf.set(this.cipher.update(ZEROES.subarray(0, n)), off)
    }
    return buf
  }

  bytes(n: number): Buffer {
    return this.fill(Buffer.allocUnsafe(n)) as Buffer
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.bytes(4).readUInt32LE(0) % (hi - lo + 1))
  }
}
