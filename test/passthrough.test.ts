import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Read-only mounts of directory layers hand file reads to the kernel (FUSE passthrough): the
 * bytes come from the host files and no READ request reaches the daemon, which the daemon's
 * request trace shows. Needs root, /dev/fuse and a kernel with FUSE passthrough (6.9+).
 */

const BIN = fileURLToPath(new URL('../../bin/strata.js', import.meta.url))

function noPassthrough(): string | undefined {
  if (process.getuid?.() !== 0) return 'FUSE passthrough needs root (CAP_SYS_ADMIN)'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  const [major, minor] = release().split('.').map(Number)
  if (major! < 6 || (major === 6 && minor! < 9)) return `FUSE passthrough needs Linux 6.9 or later (this is ${release()})`
  const config = `/boot/config-${release()}`
  if (existsSync(config) && !/^CONFIG_FUSE_PASSTHROUGH=y/m.test(readFileSync(config, 'utf8'))) return 'this kernel is built without CONFIG_FUSE_PASSTHROUGH'
  return undefined
}

/** The opcodes the daemon traced (STRATA_FUSE_TRACE), counted by name. */
function tracedOpcodes(runtimeDir: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const name of readdirSync(runtimeDir).filter((n) => n.endsWith('.log'))) {
    for (const m of readFileSync(join(runtimeDir, name), 'utf8').matchAll(/^fuse: [\d.]+ (\w+) /gm)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1)
  }
  return counts
}

test('FUSE passthrough: read-only directory layers are read by the kernel from the host files', async (t) => {
  const reason = noPassthrough()
  if (reason) return t.skip(reason)
  const dir = await mkdtemp(join(tmpdir(), 'strata-passthrough-'))
  const [top, bottom, mnt, runtime] = ['top', 'bottom', 'mnt', 'run'].map((n) => join(dir, n))
  for (const d of [top, bottom, mnt, runtime]) await mkdir(d)
  const big = randomBytes(5 << 20)
  const small = Buffer.from('in the top layer\n')
  await writeFile(join(bottom, 'big'), big)
  await writeFile(join(bottom, 'shadowed'), 'bottom\n')
  await writeFile(join(top, 'shadowed'), small)
  const env = { ...process.env, STRATA_RUNTIME_DIR: runtime, STRATA_FUSE_TRACE: '1' }
  execFileSync(process.execPath, [BIN, 'mount', '-o', `lowerdir=${top}:${bottom}`, mnt], { env })
  try {
    assert.deepEqual(await readFile(join(mnt, 'big')), big)
    assert.deepEqual(await readFile(join(mnt, 'shadowed')), small, 'the top layer hides the bottom one')
    // two handles on one file at once share its backing file; reads at offsets see the same bytes
    const [a, b] = [await open(join(mnt, 'big')), await open(join(mnt, 'big'))]
    try {
      const at = 3 * 1048576 + 17
      const { buffer } = await a.read(Buffer.alloc(4096), 0, 4096, at)
      assert.deepEqual(buffer, big.subarray(at, at + 4096))
      assert.deepEqual((await b.read(Buffer.alloc(100), 0, 100, big.length - 50)).bytesRead, 50, 'a read past the end stops at the size')
    } finally {
      await a.close()
      await b.close()
    }
  } finally {
    execFileSync(process.execPath, [BIN, 'umount', mnt], { env })
  }
  try {
    const ops = tracedOpcodes(runtime)
    assert.ok((ops.get('OPEN') ?? 0) >= 4, `the daemon saw the opens (${JSON.stringify([...ops])})`)
    assert.equal(ops.get('READ') ?? 0, 0, 'no READ reached the daemon')
    const log = readdirSync(runtime).filter((n) => n.endsWith('.log')).map((n) => readFileSync(join(runtime, n), 'utf8')).join('')
    assert.doesNotMatch(log, /passthrough off/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
