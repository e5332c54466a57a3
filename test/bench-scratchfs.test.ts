import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { scratchFsIn } from '../bench/suite/scratchfs.js'
import { mountPoints, mountType } from '../bench/lib/proc.js'
import { withTempDir } from './helpers.js'

/**
 * The benchmark suite's scratch file system: a fresh journaled ext4 mounted for the run, which
 * its close unmounts and removes even when the run left a mount inside it. Needs root, loop
 * devices and mkfs.ext4.
 */

function noScratchFs(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a loop device needs root'
  try {
    execFileSync('mkfs.ext4', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'mkfs.ext4 (e2fsprogs) is not installed'
  }
  return undefined
}

test('bench scratch fs: a journaled ext4 on a loop device, unmounted and removed with what a run left in it', async (t) => {
  const reason = noScratchFs()
  if (reason) return t.skip(reason)
  await withTempDir('strata-scratchfs-', async (dir) => {
    const fs = await scratchFsIn(dir, { keep: false })
    let closed = false
    try {
      assert.equal(mountType(fs.path), 'ext4', 'the scratch dir is an ext4 of its own')
      const source = execFileSync('findmnt', ['-no', 'SOURCE', fs.path], { encoding: 'utf8' }).trim()
      assert.match(source, /^\/dev\/loop\d+$/)
      const loop = source.slice('/dev/'.length)
      assert.ok(hasJournal(loop), `${loop} has a journal`)
      assert.equal(readFileSync(`/sys/block/${loop}/loop/dio`, 'utf8').trim(), '1', 'the loop device does direct I/O')
      // what a run leaves behind: files, and a mount inside the scratch (an interrupted workload's)
      await writeFile(join(fs.path, 'left'), 'x')
      const inner = join(fs.path, 'inner')
      await mkdir(inner)
      execFileSync('mount', ['-t', 'tmpfs', 'none', inner])
      await fs.close()
      closed = true
      assert.ok(!mountPoints().has(inner) && !mountPoints().has(fs.path), 'nothing stays mounted')
      assert.ok(!existsSync(fs.path) && !existsSync(join(dir, 'scratch.img')), 'the dir and its image are gone')
      assert.ok(!execFileSync('losetup', ['-a'], { encoding: 'utf8' }).includes(join(dir, 'scratch.img')), 'the loop device is detached')
    } finally {
      if (!closed) await fs.close()
    }
  })
})

test('bench scratch fs: --keep keeps the image, and the next run mounts it with what it holds', async (t) => {
  const reason = noScratchFs()
  if (reason) return t.skip(reason)
  await withTempDir('strata-scratchfs-', async (dir) => {
    const first = await scratchFsIn(dir, { keep: true })
    await writeFile(join(first.path, 'data.json'), 'kept')
    await first.close()
    assert.ok(existsSync(join(dir, 'scratch.img')), 'the image stays')
    const second = await scratchFsIn(dir, { keep: false })
    try {
      assert.match(second.describe, /kept from an earlier run/)
      assert.equal(readFileSync(join(second.path, 'data.json'), 'utf8'), 'kept')
    } finally {
      await second.close()
    }
    assert.ok(!existsSync(join(dir, 'scratch.img')), 'a run without --keep removes it')
  })
})

/** Whether jbd2 runs a journal for block device `dev` (it lists it as `loop0-8`). */
function hasJournal(dev: string): boolean {
  return existsSync('/proc/fs/jbd2') && readdirSync('/proc/fs/jbd2').some((n) => n.startsWith(`${dev}-`))
}
