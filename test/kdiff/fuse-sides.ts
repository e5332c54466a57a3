import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { access, constants } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Store } from '../../engine/index.js'
import { HostFs, type FsUnderTest } from './fsut.js'
import { StrataFs } from './strata-fsut.js'
import type { Mounts } from './sides.js'

const SERVER = fileURLToPath(new URL('./fuse-serve.js', import.meta.url))

/** Why a FUSE mount cannot be made here, or undefined: root and /dev/fuse are needed. */
export async function fuseUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'FUSE mounts are made with mount(8) and need root'
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK)
  } catch {
    return '/dev/fuse is missing (no FUSE in this kernel or container)'
  }
  return undefined
}

/** Starts fuse-serve.js and waits for its mount; the result's close() unmounts and waits for the exit. */
export async function serveFuse(name: string, args: string[]): Promise<HostFs> {
  const child: ChildProcess = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, UV_THREADPOOL_SIZE: '16' } })
  const exited = once(child, 'exit')
  let out = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('ready\n')) resolve()
    })
    exited.then(([code]) => reject(new Error(`FUSE server exited (${code}) before mounting`)), reject)
  })
  return new HostFs(name, args[1]!, async () => {
    child.kill('SIGTERM')
    // a file left open (a failed test) keeps a lazily unmounted session alive: do not wait forever
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  })
}

/** The FUSE front end over directory layers: fuse-serve.js in dir mode. */
export async function fuseDirSut(m: Mounts, lowers: string[], up: { upperdir: string; workdir: string }): Promise<FsUnderTest> {
  return serveFuse('Strata FUSE mount of a dir stack', ['dir', await m.dir('fuse'), up.upperdir, up.workdir, ...lowers])
}

/** The FUSE front end over an active store snapshot; the store is handed to the server while it runs. */
export async function fuseStoreSut(m: Mounts, store: Store, storePath: string, key: string): Promise<FsUnderTest> {
  await store.close()
  return serveFuse('Strata FUSE mount of a store snapshot', ['store', await m.dir('fuse'), storePath, key])
}

export { StrataFs }
