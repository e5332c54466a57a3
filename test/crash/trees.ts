import { execFileSync } from 'node:child_process'
import { chmod, link, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Rng } from '../model/prng.js'

/**
 * The trees and changes the crash tests write, all derived from a seed so that the test process
 * and the killed driver process agree on every byte without passing data around.
 */

const MiB = 1024 * 1024

/**
 * A host tree of ~200 small files (some above the 4 KiB inline limit) in nested dirs, a few
 * multi-MiB files (their batches go to pack files), symlinks, a hard link and an empty dir.
 */
export async function makeTree(dir: string, seed: number): Promise<void> {
  const rng = new Rng(seed)
  await mkdir(dir, { recursive: true })
  for (let d = 0; d < 8; d++) {
    const sub = join(dir, `d${d}`, `s${rng.int(3)}`)
    await mkdir(sub, { recursive: true })
    for (let f = 0; f < 25; f++) {
      const at = rng.chance(0.5) ? sub : join(dir, `d${d}`)
      await writeFile(join(at, `f${f}`), rng.bytes(rng.chance(0.2) ? rng.range(4097, 40_000) : rng.int(4096)))
    }
  }
  await mkdir(join(dir, 'big'))
  for (let b = 0; b < 3; b++) await writeFile(join(dir, 'big', `b${b}`), rng.bytes(rng.range(MiB, 2 * MiB + 12345)))
  await symlink('../d1/f1', join(dir, 'd0', 'link'))
  await symlink('/nowhere', join(dir, 'dangling'))
  await link(join(dir, 'd2', 'f2'), join(dir, 'd3', 'hardlink-to-d2-f2')).catch(async () => {
    // f2 may sit in the subdir
    await writeFile(join(dir, 'd2', 'f2'), rng.bytes(100))
    await link(join(dir, 'd2', 'f2'), join(dir, 'd3', 'hardlink-to-d2-f2'))
  })
  await mkdir(join(dir, 'empty'))
  await chmod(join(dir, 'd4'), 0o750)
}

/** A copy of `from` at `to` with the changes of a rebuild: some files rewritten, removed, added. */
export async function mutateTree(from: string, to: string, seed: number): Promise<void> {
  execFileSync('cp', ['-a', from, to])
  const rng = new Rng(seed)
  // d5..d7 may be gone: an earlier rebuild removed one
  for (let i = 0; i < 6; i++) await writeFile(join(to, `d${rng.int(5)}`, `f${rng.int(25)}`), rng.bytes(rng.int(6000)))
  for (let i = 0; i < 3; i++) await rm(join(to, `d${rng.int(5)}`, `f${rng.int(25)}`), { force: true })
  await rm(join(to, `d${5 + rng.int(3)}`), { recursive: true, force: true })
  const added = join(to, `new${seed}`)
  await mkdir(added, { recursive: true })
  for (let i = 0; i < 10; i++) await writeFile(join(added, `n${i}`), rng.bytes(rng.int(9000)))
  await writeFile(join(to, 'big', `b${rng.int(3)}`), rng.bytes(rng.range(MiB, 2 * MiB)))
}

/** The calls `applyChanges` makes, as node:fs/promises and SnapshotFs both offer them. */
export interface ChangeIo {
  writeFile(path: string, data: Buffer): Promise<void>
  mkdir(path: string): Promise<void>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  chmod(path: string, mode: number): Promise<void>
}

/** The same paths relative to a host dir. */
export function hostIo(root: string): ChangeIo {
  const at = (p: string): string => join(root, p)
  return {
    writeFile: (p, d) => writeFile(at(p), d),
    mkdir: async (p) => { await mkdir(at(p)) },
    rename: (a, b) => rename(at(a), at(b)),
    unlink: (p) => rm(at(p)),
    chmod: (p, m) => chmod(at(p), m),
  }
}

/**
 * Changes to a tree made by `makeTree`, as a program writing into an active snapshot makes them:
 * files rewritten in every dir (so a commit indexes many dirs), a multi-MiB file, a new dir, a
 * renamed dir (a redirect), removals and a chmod. Applied in the same order on both sides.
 */
export async function applyChanges(io: ChangeIo, seed: number): Promise<void> {
  const rng = new Rng(seed)
  for (let d = 0; d < 8; d++) {
    for (let i = 0; i < 3; i++) await io.writeFile(`/d${d}/w${seed}-${i}`, rng.bytes(rng.int(8000)))
  }
  await io.writeFile('/big/b0', rng.bytes(rng.range(2 * MiB, 3 * MiB)))
  await io.mkdir(`/made${seed}`)
  for (let i = 0; i < 20; i++) await io.writeFile(`/made${seed}/m${i}`, rng.bytes(rng.int(3000)))
  await io.rename('/d1', `/d1-renamed${seed}`)
  await io.unlink('/d2/f3').catch(() => undefined)
  await io.unlink('/dangling')
  await io.chmod('/d3', 0o700)
}

/** Content of file `i` that the mount writer writes in round `round`: 4 KiB to 3 MiB. */
export function writerFile(seed: number, round: number, i: number): Buffer {
  const rng = new Rng(seed * 7919 + round * 104729 + i)
  const size = rng.pick([4096, 1000, 100_000, 1536 * 1024, 3 * MiB + 77])
  return rng.bytes(size)
}
