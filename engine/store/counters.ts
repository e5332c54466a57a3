import type { Db } from './db.js'
import { counterKey } from './keys.js'
import { encode } from './codec.js'

/**
 * Monotonic ids (inode numbers, layer ids, index node ids) handed out from blocks reserved in
 * the store, so most allocations cost no write; ids of a block lost in a crash are never reused.
 */
export class Counter {
  private next = 0
  private limit = 0
  private reserving?: Promise<void>

  constructor(private readonly db: Db, private readonly name: string, private readonly first: number, private readonly block: number) {}

  async alloc(): Promise<number> {
    while (this.next >= this.limit) {
      this.reserving ??= this.reserve().finally(() => { this.reserving = undefined })
      await this.reserving
    }
    return this.next++
  }

  private async reserve(): Promise<void> {
    const stored = (await this.db.get<number>(counterKey(this.name))) ?? this.first
    const start = Math.max(stored, this.first)
    const txn = this.db.txn()
    txn.putRaw(counterKey(this.name), encode(start + this.block))
    await txn.commit(true)
    this.next = start
    this.limit = start + this.block
  }
}
