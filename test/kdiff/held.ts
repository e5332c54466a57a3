import type { FsUnderTest, OpenFile } from './fsut.js'

/**
 * Files kept open across operations, by slot, one table per side: reads and writes through a
 * handle opened before a copy-up, a rename, an unlink or a chmod of its file.
 */
export class HeldFiles {
  private readonly slots = new Map<number, OpenFile>()

  async open(slot: number, fs: FsUnderTest, path: string, flags: number, mode: number): Promise<void> {
    await this.close(slot).catch(() => {})
    this.slots.set(slot, await fs.open(path, flags, mode))
  }

  /** The file in `slot`; an empty slot is a bad file descriptor on both sides alike. */
  get(slot: number): OpenFile {
    const f = this.slots.get(slot)
    if (!f) throw Object.assign(new Error(`no file held in slot ${slot}`), { code: 'EBADF' })
    return f
  }

  async close(slot: number): Promise<void> {
    const f = this.get(slot)
    this.slots.delete(slot)
    await f.close()
  }

  /** Closes every held file (before an unmount, a commit, the end). */
  async closeAll(): Promise<void> {
    for (const slot of [...this.slots.keys()]) await this.close(slot).catch(() => {})
  }
}
