import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseMountOptions } from '../fuse/options.js'
import { helperArgs } from '../fuse/helper.js'
import { processAlive } from '../fuse/registry.js'

/**
 * `strata mount` / `strata umount` through the CLI, as users run them: store snapshots read-only
 * and read-write, directory stacks, other commands while mounted, daemons ended by signals or
 * killed, mount(8)'s helper. Needs root and /dev/fuse; every test unmounts what it mounted.
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const HELPER = fileURLToPath(new URL('../../bin/mount.fuse.strata', import.meta.url))

function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'FUSE mounts need root'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  return undefined
}

// ---- option parsing (no mount needed) ----

test('mount options: kernel overlay names, Strata additions, generic options ignored, unknown ones refused', () => {
  const o = parseMountOptions(['lowerdir=a:/b\\:c,upperdir=u,workdir=w', 'redirect_dir=nofollow,userxattr,nosuid,nodev,noatime,x-systemd.automount,defaults,_netdev,rw'], { cwd: '/x' })
  assert.deepEqual(o.lowerdir, ['/x/a', '/b:c'])
  assert.equal(o.upperdir, '/x/u')
  assert.equal(o.workdir, '/x/w')
  assert.equal(o.redirectDir, 'nofollow')
  assert.equal(o.userxattr, true)
  assert.equal(o.readOnly, false)
  assert.equal(o.layers, true)

  const s = parseMountOptions(['snapshot=base,store=/var/lib/strata,ro,lowerdir+=/l1,lowerdir+=/l2,index=off,metacopy=off'], { cwd: '/' })
  assert.equal(s.snapshot, 'base')
  assert.equal(s.store, '/var/lib/strata')
  assert.equal(s.readOnly, true)
  assert.deepEqual(s.lowerdir, ['/l1', '/l2'])
  assert.equal(parseMountOptions(['ro,rw'], { cwd: '/' }).readOnly, false, 'the last of ro and rw wins')
  assert.equal(parseMountOptions(['nosuid'], { cwd: '/' }).layers, false)
  assert.deepEqual(o.vfs, ['nosuid', 'nodev', 'noatime'], 'flags for the VFS are kept, in order, for the mount')

  const refused = (opts: string, code: string, pattern: RegExp): void => {
    assert.throws(() => parseMountOptions([opts], { cwd: '/', mountpoint: '/mnt' }), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, code, err.message)
      assert.match(err.message, pattern)
      return true
    })
  }
  refused('lowerdir=/a,frobnicate', 'EINVAL', /Unknown parameter 'frobnicate'.*'\/mnt'/)
  refused('redirect_dir=sideways', 'EINVAL', /redirect_dir/)
  refused('lowerdir=/a::/b', 'ENOTSUP', /data-only/)
  refused('lowerdir=/a:', 'EINVAL', /empty lower dir/)
  refused('upperdir=', 'EINVAL', /missing value for 'upperdir'/)
  refused('index=on', 'ENOTSUP', /index=on/)
  assert.doesNotThrow(() => parseMountOptions(['frobnicate'], { cwd: '/', sloppy: true }))
})

test("mount(8)'s helper call becomes strata mount", () => {
  assert.deepEqual(helperArgs(['strata', '/mnt/x', '-n', '-o', 'rw,lowerdir=/a,upperdir=/u,workdir=/w']), {
    args: ['mount', 'strata', '/mnt/x', '-o', 'rw,lowerdir=/a,upperdir=/u,workdir=/w'],
    fake: false,
  })
  assert.deepEqual(helperArgs(['base', '/mnt/x', '-sv', '-ostore=/s', '-t', 'fuse.strata']), { args: ['mount', 'base', '/mnt/x', '-o', 'store=/s', '--sloppy'], fake: false })
  assert.equal(helperArgs(['a', '/b', '-f']).fake, true)
  assert.throws(() => helperArgs(['only-one']), /usage: mount\.fuse\.strata/)
})

// ---- mounts ----

interface Run {
  code: number
  stdout: string
  stderr: string
}

interface Env {
  root: string
  store: string
  runtime: string
  /** strata with --store and the test's runtime dir; never rejects on a non-zero exit. */
  strata(args: string[], opts?: { cwd?: string; store?: boolean }): Promise<Run>
  ok(args: string[], opts?: { cwd?: string }): Promise<string>
  /** A new empty directory under the test's root, unmounted (lazily) at the end. */
  dir(name: string): Promise<string>
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined
      if (code === undefined) return reject(err)
      resolve({ code, stdout, stderr })
    })
  })
}

function strataMountAt(mnt: string): { fstype: string; source: string; flags: string[] } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (f[4] === mnt && dash > 0 && f[dash + 1] === 'fuse.strata') return { fstype: f[dash + 1], source: f[dash + 2], flags: f[5].split(',') }
  }
  return undefined
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await sleep(25)
  }
}

interface Listed {
  mountpoint: string
  source: string
  mode: string
  pid: number
  live: boolean
}

async function mounts(env: Env): Promise<Listed[]> {
  return JSON.parse(await env.ok(['--json', 'mounts'])) as Listed[]
}

/** A store holding `base` (from a host tree) in a fresh temp root; everything mounted there is unmounted at the end. */
function mountTest(name: string, fn: (env: Env) => Promise<void>): void {
  test(name, { timeout: 180_000 }, async (t) => {
    const reason = cannotMount()
    if (reason) return t.skip(reason)
    const root = await mkdtemp(join(tmpdir(), 'strata-mount-'))
    const runtime = join(root, 'run')
    const store = join(root, 'store')
    const dirs: string[] = []
    const procEnv = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: runtime }
    const env: Env = {
      root,
      store,
      runtime,
      strata: (args, opts = {}) => run(process.execPath, [BIN, ...(opts.store === false ? [] : ['--store', store]), ...args], procEnv, opts.cwd),
      ok: async (args, opts) => {
        const r = await env.strata(args, opts)
        assert.equal(r.code, 0, `strata ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
        return r.stdout
      },
      dir: async (name) => {
        const d = join(root, name)
        await mkdir(d, { recursive: true })
        dirs.push(d)
        return d
      },
    }
    try {
      const src = await env.dir('src')
      await mkdir(join(src, 'etc'))
      await writeFile(join(src, 'etc', 'hosts'), '127.0.0.1 localhost\n')
      await writeFile(join(src, 'readme'), 'base readme\n')
      await env.ok(['snapshot', src, '--name', 'base'])
      await fn(env)
    } finally {
      for (const d of dirs) if (strataMountAt(d)) execFileSync('umount', ['-l', d])
      let daemons: Listed[] = []
      try {
        daemons = JSON.parse(execFileSync(process.execPath, [BIN, '--json', 'mounts'], { env: procEnv, encoding: 'utf8' })) as Listed[]
      } catch {
        // nothing listed
      }
      for (const m of daemons) if (processAlive(m.pid)) process.kill(m.pid, 'SIGKILL')
      await rm(root, { recursive: true, force: true })
    }
  })
}

const errCode = (code: string) => (err: NodeJS.ErrnoException): boolean => err.code === code

mountTest('a committed snapshot mounts read-only: files read, writes refused with EROFS', async (env) => {
  const mnt = await env.dir('mnt')
  assert.equal(await env.ok(['mount', 'base', mnt]), '')
  assert.ok(strataMountAt(mnt), 'mounted')
  assert.equal(await readFile(join(mnt, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n')
  assert.deepEqual((await readdir(mnt)).sort(), ['etc', 'readme'])
  await assert.rejects(writeFile(join(mnt, 'new'), 'x'), errCode('EROFS'))
  await assert.rejects(writeFile(join(mnt, 'readme'), 'x'), errCode('EROFS'))

  const [listed] = await mounts(env)
  assert.equal(listed.source, 'base')
  assert.equal(listed.mountpoint, mnt)
  assert.equal(listed.mode, 'ro')
  assert.equal(listed.live, true)

  const again = await env.strata(['mount', 'base', mnt])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /^strata: EBUSY: already mounted \(base\)/)
  assert.ok(!strataMountAt(mnt)!.flags.includes('nosuid'), 'no flag asked for, none set')
  const flagged = await env.dir('flagged')
  await env.ok(['mount', '-o', 'nosuid,nodev,noexec', 'base', flagged])
  for (const flag of ['nosuid', 'nodev', 'noexec']) assert.ok(strataMountAt(flagged)!.flags.includes(flag), `${flag} applied: ${strataMountAt(flagged)!.flags}`)
  await env.ok(['umount', flagged])

  assert.equal(await env.ok(['umount', mnt]), '')
  assert.equal(strataMountAt(mnt), undefined)
  assert.equal(processAlive(listed.pid), false, 'the daemon exits with its last mount')
  assert.deepEqual(await mounts(env), [])
  const notMounted = await env.strata(['umount', mnt])
  assert.equal(notMounted.code, 1)
  assert.equal(notMounted.stderr, `strata: ${mnt} is not a strata mount\n`)
})

mountTest('--rw: writes land in the active snapshot, commit waits for umount, other commands keep working', async (env) => {
  await env.ok(['prepare', 'work', 'base'])
  const mnt = await env.dir('rw')
  await env.ok(['mount', '--rw', 'work', mnt])
  await writeFile(join(mnt, 'etc', 'hosts'), '10.0.0.1 changed\n')
  await mkdir(join(mnt, 'out'))
  await writeFile(join(mnt, 'out', 'report.txt'), 'done\n')
  await rm(join(mnt, 'readme'))

  const refused = await env.strata(['commit', 'work-1', 'work'])
  assert.equal(refused.code, 1)
  assert.equal(refused.stderr, `strata: EBUSY: 'work' is mounted read-write at ${mnt}; run 'strata umount ${mnt}' first, commit 'work'\n`)
  const second = await env.strata(['mount', '--rw', 'work', await env.dir('rw2')])
  assert.equal(second.code, 1)
  assert.match(second.stderr, /EBUSY: 'work' is mounted read-write at/)
  const committedRw = await env.strata(['mount', '--rw', 'base', await env.dir('rw3')])
  assert.match(committedRw.stderr, /'base' is committed: --rw mounts an active snapshot/)

  // the store's daemon runs every other command on the store meanwhile
  assert.match(await env.ok(['ls', 'base', '/']), /readme/)
  const host = await env.dir('host')
  await writeFile(join(host, 'h.txt'), 'host file\n')
  await env.ok(['snapshot', 'host', '--name', 'h1'], { cwd: env.root })
  assert.equal(await env.ok(['cat', 'h1', '/h.txt']), 'host file\n')
  await env.ok(['prepare', 'other', 'base'])
  await env.ok(['commit', 'other-1', 'other'])
  // reading its own mount would have the daemon wait on itself: refused, and the daemon serves on
  const own = await env.strata(['snapshot', join(mnt, 'out'), '--name', 'own'])
  assert.equal(own.code, 1)
  assert.match(own.stderr, new RegExp(`EINVAL: inside ${mnt}, which this daemon serves`))
  assert.equal(await readFile(join(mnt, 'out', 'report.txt'), 'utf8'), 'done\n')
  // a second mount of the same store is served by the same daemon
  const ro = await env.dir('ro')
  await env.ok(['mount', 'base', ro])
  const listed = await mounts(env)
  assert.equal(listed.length, 2)
  assert.match(await env.ok(['mount']), new RegExp(`^work\\s+${mnt}\\s+rw\\s+${listed[0].pid}\\s+live$`, 'm'), 'mount without arguments lists the mounts')
  assert.equal(listed[0].pid, listed[1].pid)
  const refusedRm = await env.strata(['rm', 'base'])
  assert.match(refusedRm.stderr, new RegExp(`EBUSY: 'base' is mounted at ${ro}`))

  await env.ok(['umount', ro])
  await env.ok(['umount', mnt])
  // the daemon has closed the store by the time umount returns
  assert.equal(processAlive(listed[0].pid), false)
  assert.equal(await env.ok(['commit', 'work-1', 'work']), "committed 'work' as 'work-1'\n")
  assert.equal(await env.ok(['cat', 'work-1', '/etc/hosts']), '10.0.0.1 changed\n')
  assert.equal(await env.ok(['cat', 'work-1', '/out/report.txt']), 'done\n')
  assert.deepEqual((await env.ok(['diff', 'base', 'work-1'])).trim().split('\n').sort(), ['A /out', 'D /readme', 'M /etc/hosts'])
})

mountTest('directory layers: kernel-format whiteouts in the upper dir, kept across remounts', async (env) => {
  const l1 = await env.dir('l1')
  const l2 = await env.dir('l2')
  const upper = await env.dir('upper')
  const work = await env.dir('work')
  await writeFile(join(l1, 'top.txt'), 'top\n')
  await mkdir(join(l2, 'dir'))
  await writeFile(join(l2, 'dir', 'inner'), 'inner\n')
  await writeFile(join(l2, 'bottom.txt'), 'bottom\n')
  const mnt = await env.dir('merged')
  const opts = `lowerdir=l1:l2,upperdir=upper,workdir=work`
  await env.ok(['mount', '-o', opts, mnt], { cwd: env.root })
  assert.deepEqual((await readdir(mnt)).sort(), ['bottom.txt', 'dir', 'top.txt'])
  await rm(join(mnt, 'bottom.txt'))
  await rm(join(mnt, 'dir'), { recursive: true })
  await writeFile(join(mnt, 'new.txt'), 'new\n')
  for (const name of ['bottom.txt', 'dir']) {
    const st = await lstat(join(upper, name))
    assert.ok(st.isCharacterDevice() && st.rdev === 0, `${name} is a whiteout (char 0/0) in the upper dir`)
  }
  assert.equal(await readFile(join(upper, 'new.txt'), 'utf8'), 'new\n')
  const [listed] = await mounts(env)
  assert.equal(listed.mode, 'rw')
  await env.ok(['umount', mnt])
  assert.equal(processAlive(listed.pid), false)

  await env.ok(['mount', '-o', opts, mnt], { cwd: env.root })
  assert.deepEqual((await readdir(mnt)).sort(), ['new.txt', 'top.txt'])
  await env.ok(['umount', mnt])

  // ro (or no upper dir) mounts read-only; option errors are the kernel's
  await env.ok(['mount', '-o', `${opts},ro,nosuid,nodev`, mnt], { cwd: env.root })
  await assert.rejects(writeFile(join(mnt, 'x'), 'x'), errCode('EROFS'))
  await env.ok(['umount', mnt])
  const unknown = await env.strata(['mount', '-o', 'lowerdir=l1,frobnicate', mnt], { cwd: env.root })
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /^strata: EINVAL: Unknown parameter 'frobnicate'/)
  const noWork = await env.strata(['mount', '-o', 'lowerdir=l1,upperdir=upper', mnt], { cwd: env.root })
  assert.match(noWork.stderr, /EINVAL: an upper dir needs a work dir/)
  const missing = await env.strata(['mount', '-o', 'lowerdir=l1', join(env.root, 'nowhere')])
  assert.match(missing.stderr, /ENOENT: mountpoint does not exist/)
  assert.equal(strataMountAt(mnt), undefined)
})

mountTest('snapshot= puts a store snapshot under directory layers', async (env) => {
  const l1 = await env.dir('l1')
  const upper = await env.dir('upper')
  const work = await env.dir('work')
  await writeFile(join(l1, 'extra'), 'extra\n')
  const mnt = await env.dir('stack')
  await env.ok(['mount', '-o', `snapshot=base,lowerdir=${l1},upperdir=${upper},workdir=${work}`, mnt])
  assert.deepEqual((await readdir(mnt)).sort(), ['etc', 'extra', 'readme'])
  await writeFile(join(mnt, 'etc', 'hosts'), 'changed\n')
  assert.equal(await readFile(join(upper, 'etc', 'hosts'), 'utf8'), 'changed\n', 'copied up into the upper dir')
  const refused = await env.strata(['rm', 'base'])
  assert.match(refused.stderr, /EBUSY: 'base' is the bottom layer of the mount at/)
  await env.ok(['umount', mnt])
  assert.equal(await env.ok(['cat', 'base', '/etc/hosts']), '127.0.0.1 localhost\n', 'the snapshot itself is unchanged')
})

mountTest('SIGTERM to the daemon unmounts cleanly and lets go of the store', async (env) => {
  await env.ok(['prepare', 'work', 'base'])
  const mnt = await env.dir('rw')
  await env.ok(['mount', '--rw', 'work', mnt])
  await writeFile(join(mnt, 'kept'), 'kept\n')
  const [listed] = await mounts(env)
  process.kill(listed.pid, 'SIGTERM')
  await waitFor('the daemon to exit', () => !processAlive(listed.pid))
  assert.equal(strataMountAt(mnt), undefined)
  assert.deepEqual(await mounts(env), [])
  await env.ok(['commit', 'w1', 'work'])
  assert.equal(await env.ok(['cat', 'w1', '/kept']), 'kept\n')
})

mountTest('a killed daemon: other commands still work, umount cleans up, and the dir mounts again', async (env) => {
  const mnt = await env.dir('mnt')
  await env.ok(['mount', 'base', mnt])
  const [listed] = await mounts(env)
  process.kill(listed.pid, 'SIGKILL')
  await waitFor('the daemon to die', () => !processAlive(listed.pid))

  assert.match(await env.ok(['ls', 'base']), /readme/, 'the store opens; the dead socket is no obstacle')
  const [stale] = await mounts(env)
  assert.equal(stale.live, false)
  const busy = await env.strata(['mount', 'base', mnt])
  assert.equal(busy.code, 1)
  assert.match(busy.stderr, /EBUSY: a Strata mount whose daemon died is still there; run 'strata umount/)

  assert.equal(await env.ok(['umount', mnt]), '')
  assert.equal(strataMountAt(mnt), undefined)
  assert.deepEqual(await mounts(env), [])
  assert.deepEqual((await readdir(env.runtime)).filter((n) => n.endsWith('.sock')), [], 'no socket left')

  await env.ok(['mount', 'base', mnt])
  assert.equal(await readFile(join(mnt, 'readme'), 'utf8'), 'base readme\n')
  await env.ok(['umount', mnt])
})

mountTest('close(2) hands written data to the store: a daemon killed right after loses none of it', async (env) => {
  await env.ok(['prepare', 'work', 'base'])
  const mnt = await env.dir('rw')
  await env.ok(['mount', '--rw', 'work', mnt])
  const fd = openSync(join(mnt, 'closed'), 'w')
  writeSync(fd, 'written, then closed\n')
  // A child sharing the open file keeps the kernel from releasing it: the close below is seen
  // by the daemon as FLUSH alone, and only FLUSH can have stored the data.
  const holder = spawn('sleep', ['60'], { stdio: ['ignore', fd, 'ignore'] })
  closeSync(fd)
  const [listed] = await mounts(env)
  process.kill(listed.pid, 'SIGKILL')
  holder.kill('SIGKILL')
  await waitFor('the daemon and the holder to end', () => !processAlive(listed.pid) && (holder.exitCode !== null || holder.signalCode !== null))
  await env.ok(['umount', mnt])
  await env.ok(['mount', '--rw', 'work', mnt])
  assert.equal(await readFile(join(mnt, 'closed'), 'utf8'), 'written, then closed\n')
  await env.ok(['umount', mnt])
})

mountTest('-f keeps the mount in the foreground until a signal', async (env) => {
  const mnt = await env.dir('fg')
  const child = spawn(process.execPath, [BIN, '--store', env.store, 'mount', '-f', 'base', mnt], {
    env: { ...process.env, STRATA_RUNTIME_DIR: env.runtime },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = once(child, 'exit')
  try {
    await waitFor('the foreground mount', () => strataMountAt(mnt) !== undefined || child.exitCode !== null)
    assert.equal(await readFile(join(mnt, 'readme'), 'utf8'), 'base readme\n')
    child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0, stderr)
    assert.equal(strataMountAt(mnt), undefined)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
})

mountTest("mount(8)'s helper: install-helper links it, and its call mounts; a plain umount ends the daemon", async (env) => {
  const sbin = await env.dir('sbin')
  assert.match(await env.ok(['install-helper', '--dir', sbin]), /^installed /)
  const link = join(sbin, 'mount.fuse.strata')
  assert.equal(await readlink(link), HELPER)
  assert.match(await env.ok(['install-helper', '--dir', sbin]), /already points to/)

  const lower = await env.dir('lower')
  const upper = await env.dir('upper')
  const work = await env.dir('work')
  await writeFile(join(lower, 'f'), 'lower\n')
  const mnt = await env.dir('mnt')
  // exactly as mount(8) runs it for `mount -t fuse.strata strata MNT -o …` or an fstab line
  const procEnv = { ...process.env, STRATA_RUNTIME_DIR: env.runtime }
  const r = await run(link, ['strata', mnt, '-n', '-o', `rw,lowerdir=${lower},upperdir=${upper},workdir=${work},nofail,x-systemd.automount`], procEnv)
  assert.equal(r.code, 0, r.stderr)
  assert.equal(strataMountAt(mnt)?.source, 'strata')
  await writeFile(join(mnt, 'g'), 'through the helper\n')
  assert.equal(await readFile(join(upper, 'g'), 'utf8'), 'through the helper\n')
  const [listed] = await mounts(env)

  execFileSync('umount', [mnt])
  await waitFor('the daemon to notice the umount and exit', () => !processAlive(listed.pid))
  assert.deepEqual(await mounts(env), [])

  const bad = await run(link, ['strata', mnt, '-o', 'lowerdir=/nonexistent-strata-dir'], procEnv)
  assert.equal(bad.code, 32, 'mount failure status')
  assert.match(bad.stderr, /ENOENT: lower dir does not exist/)
  assert.equal((await run(link, ['only-source'], procEnv)).code, 1, 'usage status')
})
