import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { setAttribute } from 'fs-xattr'
import { cannotCompare } from './parity-mounts.js'

/**
 * Redirects written by hand into an upper dir (trusted.overlay.redirect), looked up through the
 * kernel's overlayfs and through a Strata `-o lowerdir=` mount of the same dirs: each lookup must
 * list the same names or fail with the same errno (EINVAL for a malformed value, EACCES for a
 * '.' or '..' reached in the walk, a miss for a name over NAME_MAX or a path leading nowhere).
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))
const run = promisify(execFile)

// every value that reaches a dir reaches its own: the kernel refuses (ESTALE) one lower dir under two merged ones
const VALUES: string[] = [
  '/src', 'src2', '/a/b', '/nowhere', 'nowhere', '/nowhere/..', '/src/f/..', '/src/..', '/../src', '/./src', '..', '.',
  '/', '', 'a/b', '/a//b', '/a/b/', '/src3\0junk', '\0x', `/${'x'.repeat(300)}`, `/${'x'.repeat(300)}/..`, 'y'.repeat(300),
  // 3.9 KB: followed, however long (redirect_max bounds only the redirects made)
  `/${'x'.repeat(3900)}`, `/${Array(1950).fill('a').join('/')}`,
]


function look(dir: string): string {
  try {
    return readdirSync(dir).sort().join(',')
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}

test('redirects that are malformed, lead nowhere or are long: a directory-layer mount answers as the kernel overlayfs', { timeout: 120_000 }, async (t) => {
  const reason = cannotCompare()
  if (reason) return t.skip(reason)
  const root = await mkdtemp(join(tmpdir(), 'strata-redirect-'))
  const mounted: string[] = []
  const env = { ...process.env, STRATA_DEBUG: '', STRATA_RUNTIME_DIR: join(root, 'run') }
  try {
    const lower = join(root, 'lower')
    for (const src of ['src', 'src2', 'src3']) {
      mkdirSync(join(lower, src), { recursive: true })
      writeFileSync(join(lower, src, 'f'), 'f\n')
    }
    mkdirSync(join(lower, 'a', 'b'), { recursive: true })
    writeFileSync(join(lower, 'a', 'b', 'g'), 'g\n')
    const seen: Record<string, string[]> = {}
    for (const system of ['kernel', 'strata']) {
      const [upper, work, mnt] = ['upper', 'work', 'mnt'].map((d) => join(root, `${system}-${d}`))
      for (const d of [upper, work, mnt]) mkdirSync(d)
      for (const [i, v] of VALUES.entries()) {
        mkdirSync(join(upper, `d${i}`))
        await setAttribute(join(upper, `d${i}`), 'trusted.overlay.redirect', Buffer.from(v))
      }
      const opts = `lowerdir=${lower},upperdir=${upper},workdir=${work},redirect_dir=on`
      if (system === 'kernel') await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, mnt])
      else await run(process.execPath, [BIN, 'mount', '-o', opts, mnt], { env })
      mounted.push(mnt)
      seen[system] = VALUES.map((_, i) => look(join(mnt, `d${i}`)))
      execFileSync('umount', [mnt])
      mounted.pop()
    }
    const shown = (v: string): string => JSON.stringify(v.length > 40 ? `${v.slice(0, 20)}…(${v.length} bytes)` : v)
    VALUES.forEach((v, i) => t.diagnostic(`${shown(v)}: kernel ${seen.kernel![i]}, strata ${seen.strata![i]}`))
    assert.deepEqual(seen.strata, seen.kernel)
    // the cases compared are not all alike
    for (const outcome of ['f', 'g', 'EINVAL', 'EACCES', '']) assert.ok(seen.kernel!.includes(outcome), `the kernel gave ${JSON.stringify(outcome)} for some value`)
  } finally {
    for (const m of mounted) execFileSync('umount', ['-l', m], { stdio: 'ignore' })
    await rm(root, { recursive: true, force: true })
  }
})
