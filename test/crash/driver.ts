import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { Store } from '../../engine/index.js'
import { applyChanges, writerFile } from './trees.js'

/**
 * The process test/crash.test.ts kills with SIGKILL: it opens a store through the API, prints
 * `ready`, runs one operation (again and again with `--loop`) and prints `done NAME MS` after
 * each one returns, so the test knows what was committed before the kill. Not a test itself.
 *
 *   driver.js snapshot STORE SRC NAME PARENT [--loop]   snapshotDir (PARENT '' for none)
 *   driver.js commit STORE PARENT NAME SEED              prepare, applyChanges(SEED), commit
 *   driver.js gc STORE                                   gc, its report on the done line
 *   driver.js import STORE TAR NAME [--loop]             importLayer of an OCI tar
 *   driver.js writer DIR LOG SEED ROUND COUNT|forever    files written + fsynced into DIR (a mount)
 */

const say = (line: string): void => { process.stdout.write(`${line}\n`) }

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now()
  const r = await fn()
  return [r, Math.round(performance.now() - t0)]
}

/** Runs `op` once, or forever with --loop (each run under `name`, then `name.1`, `name.2`…). */
async function repeat(loop: boolean, name: string, op: (name: string) => Promise<unknown>): Promise<void> {
  for (let i = 0; ; i++) {
    const n = i === 0 ? name : `${name}.${i}`
    const [, ms] = await timed(() => op(n))
    say(`done ${n} ${ms}`)
    if (!loop) return
  }
}

async function withStore(path: string, fn: (store: Store) => Promise<void>): Promise<void> {
  const store = await Store.open({ path, cacheBytes: 16 << 20 })
  say('ready')
  await fn(store)
  await store.close()
}

/** Files written one by one into DIR; each is logged only once its fsync and close returned. */
function writer(dir: string, log: string, seed: number, round: number, count: number): void {
  mkdirSync(dir, { recursive: true })
  say('ready')
  const t0 = performance.now()
  for (let i = 0; i < count; i++) {
    const name = `f${i}`
    const fd = openSync(join(dir, name), 'w')
    const data = writerFile(seed, round, i)
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off, Math.min(1 << 20, data.length - off))
    fsyncSync(fd)
    closeSync(fd)
    appendFileSync(log, `${name}\n`)
  }
  say(`done writer ${Math.round(performance.now() - t0)}`)
}

async function main(argv: string[]): Promise<void> {
  const loop = argv.includes('--loop')
  const [op, ...a] = argv.filter((x) => x !== '--loop')
  switch (op) {
    case 'snapshot':
      return withStore(a[0], (store) => repeat(loop, a[2], (name) => store.snapshotDir(a[1], { name, parent: a[3] })))
    case 'commit':
      return withStore(a[0], async (store) => {
        const [, parent, name, seed] = a
        const key = `work-${name}`
        const [, ms] = await timed(async () => {
          await store.prepare(key, parent)
          const fs = store.fs(key)
          await applyChanges({
            // the modes a process with umask 022 gets, as on the host side
            writeFile: (p, d) => fs.writeFile(p, d, { mode: 0o644 }),
            mkdir: async (p) => { await fs.mkdir(p, 0o755) },
            rename: (x, y) => fs.rename(x, y),
            unlink: (p) => fs.unlink(p),
            chmod: (p, m) => fs.chmod(p, m),
          }, Number(seed))
          say('committing')
          await store.commit(name, key)
        })
        say(`done ${name} ${ms}`)
      })
    case 'gc':
      return withStore(a[0], async (store) => {
        const [report, ms] = await timed(() => store.gc())
        say(`done gc ${ms} ${JSON.stringify(report)}`)
      })
    case 'import':
      return withStore(a[0], (store) => repeat(loop, a[2], (name) => store.importLayer(a[1], { format: 'oci', name })))
    case 'writer':
      return writer(a[0], a[1], Number(a[2]), Number(a[3]), a[4] === 'forever' ? Infinity : Number(a[4]))
    default:
      throw new Error(`unknown operation '${String(op)}'`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`driver: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
