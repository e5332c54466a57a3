import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statfsSync, writeSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Store } from '../engine/index.js'
import { processAlive } from '../fuse/registry.js'
import { rejectsWith } from './helpers.js'

/**
 * A full disk, on a small loop-mounted ext4: a snapshot or an OCI import bigger than the
 * filesystem fails with ENOSPC and leaves nothing that gc cannot reclaim, the store still
 * opens; writes through a --rw mount and through the API get ENOSPC (never EIO), and every
 * write acknowledged before or after the disk filled up survives a remount. Needs root, loop
 * devices and mkfs.ext4 (and /dev/fuse for the mount); every mount and loop device is undone.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const MiB = 1024 * 1024
const MIXED = [4096, 200_000, 3 * MiB]

function cannotLoop(): string | undefined {
  if (process.getuid?.() !== 0) return 'loop devices need root'
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' })
    } catch {
      return `${tool} is not installed`
    }
  }
  return undefined
}

function run(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, maxBuffer: 64 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Bytes free on the filesystem holding `dir` (for root). */
const freeBytes = (dir: string): number => {
  const s = statfsSync(dir)
  return s.bfree * s.bsize
}

/**
 * A fresh ext4 of `mib` MiB mounted at `<root>/fs` (with `root` a temp dir on the host disk for
 * what must not take its space), unmounted and detached afterwards even on failure.
 */
function loopTest(name: string, mib: number, fn: (fsDir: string, root: string) => Promise<void>, opts: { fuse?: boolean } = {}): void {
  test(name, { timeout: 300_000 }, async (t) => {
    const reason = cannotLoop() ?? (opts.fuse && !existsSync('/dev/fuse') ? 'no /dev/fuse' : undefined)
    if (reason) return t.skip(reason)
    const root = await mkdtemp(join(tmpdir(), 'strata-diskfull-'))
    const img = join(root, 'img')
    const fsDir = join(root, 'fs')
    let loop: string | undefined
    let mounted = false
    try {
      await writeFile(img, '')
      execFileSync('truncate', ['-s', `${mib}M`, img])
      loop = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim()
      execFileSync('mkfs.ext4', ['-q', loop])
      await mkdir(fsDir)
      execFileSync('mount', [loop, fsDir])
      mounted = true
      await fn(fsDir, root)
    } finally {
      if (mounted) {
        try {
          execFileSync('umount', [fsDir])
        } catch {
          execFileSync('umount', ['-l', fsDir])
        }
      }
      if (loop) execFileSync('losetup', ['-d', loop])
      await rm(root, { recursive: true, force: true })
    }
  })
}

/** A host tree of random 3 MiB files (no chunk dedups) adding up to about `mib` MiB. */
async function bigTree(dir: string, mib: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (let i = 0; i * 3 < mib; i++) await writeFile(join(dir, `f${i}`), randomBytes(3 * MiB))
  await writeFile(join(dir, 'small'), randomBytes(4096))
}

/** After a failed import: the store opens, nothing temporary is left, fsck passes, and gc gives the space back. */
async function assertNothingLeft(storeDir: string, fsDir: string, failed: Error): Promise<void> {
  assert.match(failed.message, /no space left on device/i)
  assert.ok(failed.message.includes(storeDir), `the message names the store: ${failed.message}`)
  const store = await Store.open({ path: storeDir })
  try {
    const keys: string[] = []
    for await (const [key] of store.records()) keys.push(key)
    assert.deepEqual(keys.filter((k) => k.startsWith('.import-')), [], 'no temporary snapshot is left')
    const report = await store.fsck()
    assert.ok(report.ok, report.problems.join('\n'))
    const before = freeBytes(fsDir)
    await store.gc()
    const after = freeBytes(fsDir)
    assert.ok(after - before > 100 * MiB, `gc gave back ${((after - before) / MiB).toFixed(1)} MiB`)
  } finally {
    await store.close()
  }
}

loopTest('a snapshot bigger than the filesystem fails with ENOSPC and leaves nothing gc cannot reclaim', 160, async (fsDir, root) => {
  const tree = join(root, 'tree')
  await bigTree(tree, 200)
  const storeDir = join(fsDir, 'store')
  const store = await Store.open({ path: storeDir })
  let failed: Error
  try {
    failed = await rejectsWith(store.snapshotDir(tree, { name: 'big' }), 'ENOSPC')
  } finally {
    await store.close()
  }
  // the commands a user runs next, through the CLI
  const env = { ...process.env, STRATA_RUNTIME_DIR: join(root, 'run') }
  for (const cmd of [['snapshots'], ['fsck']]) {
    const r = await run(process.execPath, [BIN, '--store', storeDir, ...cmd], env)
    assert.equal(r.code, 0, `strata ${cmd.join(' ')}: ${r.stderr}`)
    assert.doesNotMatch(r.stdout, /\.import-/)
  }
  await assertNothingLeft(storeDir, fsDir, failed)
})

loopTest('an OCI layer bigger than the filesystem fails with ENOSPC and leaves nothing gc cannot reclaim', 160, async (fsDir, root) => {
  const tree = join(root, 'tree')
  await bigTree(tree, 200)
  const tar = join(root, 'layer.tar')
  execFileSync('tar', ['-cf', tar, '-C', tree, '.'])
  const storeDir = join(fsDir, 'store')
  const store = await Store.open({ path: storeDir })
  let failed: Error
  try {
    failed = await rejectsWith(store.importLayer(tar, { format: 'oci', name: 'big' }), 'ENOSPC')
  } finally {
    await store.close()
  }
  await assertNothingLeft(storeDir, fsDir, failed)
})

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Writes a file the way a careful program does: write, fsync, close; true when all three succeed. */
function writeDurably(path: string, data: Buffer, errors: string[]): boolean {
  let fd: number
  try {
    fd = openSync(path, 'w')
  } catch (err) {
    errors.push((err as NodeJS.ErrnoException).code ?? String(err))
    return false
  }
  let ok = true
  try {
    for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done)
    fsyncSync(fd)
  } catch (err) {
    errors.push((err as NodeJS.ErrnoException).code ?? String(err))
    ok = false
  }
  try {
    closeSync(fd)
  } catch (err) {
    errors.push((err as NodeJS.ErrnoException).code ?? String(err))
    ok = false
  }
  return ok
}

/**
 * Fills the filesystem through `dir` with files of `sizes` in turn until writes have failed
 * `failures` times; returns the acknowledged files' digests and the errors seen.
 */
function fill(dir: string, prefix: string, sizes: readonly number[], failures: number, written: Map<string, string>): string[] {
  const errors: string[] = []
  for (let i = 0; errors.length < failures; i++) {
    if (i > 5000) assert.fail('the filesystem never filled up')
    const data = randomBytes(sizes[i % sizes.length])
    const name = `${prefix}${i}`
    if (writeDurably(join(dir, name), data, errors)) written.set(name, sha(data))
  }
  return errors
}

function assertAllThere(dir: string, written: Map<string, string>): void {
  const wrong: string[] = []
  for (const [name, digest] of written) {
    let got: string
    try {
      got = sha(readFileSync(join(dir, name)))
    } catch (err) {
      got = (err as Error).message
    }
    if (got !== digest) wrong.push(name)
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${written.size} acknowledged files are missing or wrong`)
}

for (const [kind, sizes] of [['mixed sizes', MIXED], ['small files (LevelDB only)', [4096, 200_000]]] as const) {
  loopTest(`writes through a --rw mount on a full disk (${kind}): ENOSPC, then every acknowledged file survives a killed daemon and a remount`, 300, async (fsDir, root) => {
    const storeDir = join(fsDir, 'store')
    const runtime = join(root, 'run')
    const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
    const strata = async (...args: string[]): Promise<string> => {
      const r = await run(process.execPath, [BIN, '--store', storeDir, ...args], env)
      assert.equal(r.code, 0, `strata ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
      return r.stdout
    }
    const mnt = join(root, 'mnt')
    await mkdir(mnt)
    // a spacer on the same filesystem, outside the store: deleting it frees 100 MiB at once
    const spacer = join(fsDir, 'spacer')
    await writeFile(spacer, Buffer.alloc(100 * MiB, 1))
    const written = new Map<string, string>()
    try {
      await strata('prepare', 'w')
      await strata('mount', '--rw', 'w', mnt)
      const errors = fill(mnt, 'a', sizes, 6, written)
      assert.deepEqual([...new Set(errors)], ['ENOSPC'], `the writer sees ENOSPC only: ${errors.join(' ')}`)

      await rm(spacer)
      const after: string[] = []
      for (let i = 0; i < 20; i++) {
        const data = randomBytes(sizes[i % sizes.length])
        assert.ok(writeDurably(join(mnt, `b${i}`), data, after), `b${i} once space is back: ${after.join(' ')}`)
        written.set(`b${i}`, sha(data))
      }
      assertAllThere(mnt, written)

      // killed, not unmounted: what LevelDB's log holds is all the next open has (a clean close
      // would write the memtable out and hide a log torn by the failed writes)
      const [{ pid }] = JSON.parse(await strata('--json', 'mounts')) as { pid: number }[]
      process.kill(pid, 'SIGKILL')
      for (let i = 0; processAlive(pid); i++) {
        if (i > 400) assert.fail('the daemon did not die')
        await sleep(25)
      }
      await strata('umount', mnt)
      await strata('mount', '--rw', 'w', mnt)
      assertAllThere(mnt, written)
      await strata('umount', mnt)
      await strata('mount', '--rw', 'w', mnt)
      assertAllThere(mnt, written)
      await strata('umount', mnt)
      await strata('fsck', '--verify-data')
    } finally {
      if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)) execFileSync('umount', ['-l', mnt])
      try {
        const daemons = JSON.parse(execFileSync(process.execPath, [BIN, '--json', 'mounts'], { env, encoding: 'utf8' })) as { pid: number }[]
        for (const d of daemons) if (processAlive(d.pid)) process.kill(d.pid, 'SIGKILL')
      } catch { /* none listed */ }
    }
  }, { fuse: true })
}

/**
 * The writing half of the API test, run in a child process that exits without closing the
 * store, as a crash would: a clean close writes LevelDB's memtable out and would hide a log
 * torn by the failed writes. Files under 1 MiB, whose data goes to LevelDB, not to packs: the
 * failed write is an append to LevelDB's log. Prints the acknowledged files' digests and the
 * errors seen.
 */
const API_WRITER = `
import { Store } from ${JSON.stringify(new URL('../engine/index.js', import.meta.url).href)}
import { createHash, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
const [storeDir, spacer] = process.argv.slice(1)
const sizes = [4096, 200000]
const sha = (b) => createHash('sha256').update(b).digest('hex')
const store = await Store.open({ path: storeDir })
await store.prepare('w')
const fs = store.fs('w')
const written = {}, errors = [], after = []
// one file written and flushed; acknowledged only when both succeed
const writeOne = async (path, i, failures) => {
  const data = randomBytes(sizes[i % sizes.length])
  try {
    await fs.writeFile(path, data)
    await store.flushAll()
    written[path] = sha(data)
  } catch (err) {
    failures.push(err.code + ': ' + err.message)
  }
}
for (let i = 0; errors.length < 4 && i < 5000; i++) await writeOne('/a' + i, i, errors)
rmSync(spacer)
for (let i = 0; i < 20; i++) await writeOne('/b' + i, i, after)
await store.db.syncLog()
process.stdout.write(JSON.stringify({ written, errors, after }))
process.exit(0)
`

loopTest('through the API: a commit that finds the disk full fails with ENOSPC; writes resume once space is freed, and all acknowledged survive a crash', 120, async (fsDir) => {
  const storeDir = join(fsDir, 'store')
  const spacer = join(fsDir, 'spacer')
  await writeFile(spacer, Buffer.alloc(60 * MiB, 1))
  const r = await run(process.execPath, ['--input-type=module', '-e', API_WRITER, storeDir, spacer])
  assert.equal(r.code, 0, r.stderr)
  const { written, errors, after } = JSON.parse(r.stdout) as { written: Record<string, string>; errors: string[]; after: string[] }
  assert.equal(errors.length, 4, 'the disk filled up')
  for (const e of errors) assert.match(e, /^ENOSPC: no space left on device for store /)
  assert.deepEqual(after, [], 'every write succeeds once space is freed')
  const store = await Store.open({ path: storeDir })
  try {
    const fs = store.fs('w')
    const wrong: string[] = []
    for (const [path, digest] of Object.entries(written)) {
      const got = await fs.readFile(path).then((b) => sha(b as Buffer), (err: Error) => err.message)
      if (got !== digest) wrong.push(path)
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${Object.keys(written).length} acknowledged files are missing or wrong after a crash`)
    const report = await store.fsck({ verifyData: true })
    assert.ok(report.ok, report.problems.join('\n'))
  } finally {
    await store.close()
  }
})

/** Writes `count` files of 100 KB into a new active snapshot 'w' and exits without closing the store (its log is left to replay). */
const LOG_WRITER = `
import { Store } from ${JSON.stringify(new URL('../engine/index.js', import.meta.url).href)}
import { randomBytes } from 'node:crypto'
const [storeDir, count] = process.argv.slice(1)
const store = await Store.open({ path: storeDir })
await store.prepare('w')
for (let i = 0; i < Number(count); i++) await store.fs('w').writeFile('/f' + i, randomBytes(100_000))
await store.flushAll()
await store.db.syncLog()
process.exit(0)
`

/** Fills the filesystem of `dir` to the last block with one file. */
function fillUp(path: string): void {
  const fd = openSync(path, 'w')
  const block = Buffer.alloc(MiB, 1)
  try {
    for (;;) {
      try {
        writeSync(fd, block)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
        break
      }
    }
    // the last partial MiB too
    for (const size of [65536, 4096, 1024]) {
      try {
        for (;;) writeSync(fd, block, 0, size)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
      }
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

loopTest('a store on a full disk still opens for reading and for gc: its reserve is given back, and made again once there is room', 120, async (fsDir, root) => {
  const storeDir = join(fsDir, 'store')
  const w = await run(process.execPath, ['--input-type=module', '-e', LOG_WRITER, storeDir, '60'])
  assert.equal(w.code, 0, w.stderr)
  assert.ok(existsSync(join(storeDir, 'RESERVE')), 'a new store keeps a reserve')
  const filler = join(fsDir, 'filler')
  fillUp(filler)

  const env = { ...process.env, STRATA_RUNTIME_DIR: join(root, 'run') }
  const strata = (...args: string[]) => run(process.execPath, [BIN, '--store', storeDir, ...args], env)
  const listed = await strata('snapshots')
  assert.equal(listed.code, 0, `snapshots on a full disk: ${listed.stderr}`)
  assert.match(listed.stdout, /^w\s+active/m)
  assert.ok(!existsSync(join(storeDir, 'RESERVE')), 'the reserve was given back to open the store')
  for (const cmd of [['fsck', '--verify-data'], ['cat', 'w', '/f0'], ['gc']]) {
    const r = await strata(...cmd)
    assert.equal(r.code, 0, `strata ${cmd.join(' ')} on a full disk: ${r.stderr}`)
  }
  const write = await strata('prepare', 'x')
  if (write.code !== 0) assert.match(write.stderr, /no space left on device for store/)

  await rm(filler)
  const again = await strata('snapshots')
  assert.equal(again.code, 0, again.stderr)
  assert.ok(existsSync(join(storeDir, 'RESERVE')), 'the reserve is made again once there is room')
})
