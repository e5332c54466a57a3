/** What the suite needs from the machine: the tools it compares with, and what it ran on. */
import { existsSync, readFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { repoRoot } from '../lib/fusesystems.js'
import { deviceReadAhead, runCmd } from '../lib/proc.js'
import { SYSTEM, type SuiteResult, type SystemName } from './types.js'

/** Debian packages of the other systems, with the command each provides. */
const PACKAGES: Array<{ pkg: string; command: string; system: SystemName }> = [
  { pkg: 'fuse-overlayfs', command: 'fuse-overlayfs', system: SYSTEM.fuseOverlayfs },
  { pkg: 'ostree', command: 'ostree', system: SYSTEM.ostree },
]

async function hasCommand(command: string): Promise<boolean> {
  const r = await runCmd('sh', ['-c', `command -v ${command}`], { check: false }).catch(() => undefined)
  return r?.code === 0
}

const lastLine = (s: string): string => s.trim().split('\n').filter(Boolean).pop() ?? ''

/**
 * Installs the missing packages with apt-get (an `apt-get update` first if the install fails);
 * returns why each system whose command is still missing cannot run.
 */
export async function ensureTools(print: (msg: string) => void): Promise<Partial<Record<SystemName, string>>> {
  const missing: typeof PACKAGES = []
  for (const p of PACKAGES) if (!(await hasCommand(p.command))) missing.push(p)
  if (missing.length === 0) return {}
  const pkgs = missing.map((p) => p.pkg)
  let failure = `${pkgs.join(', ')} not installed and no apt-get to install ${pkgs.length > 1 ? 'them' : 'it'}`
  if (await hasCommand('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const install = () => runCmd('apt-get', ['install', '-y', ...pkgs], { check: false, env })
    print(`installing ${pkgs.join(', ')}: apt-get install -y ${pkgs.join(' ')}`)
    let r = await install()
    if (r.code !== 0) {
      print(`apt-get install failed (${lastLine(r.stderr || r.stdout)}); running apt-get update and trying again`)
      await runCmd('apt-get', ['update'], { check: false, env })
      r = await install()
    }
    if (r.code === 0) print(`installed ${pkgs.join(', ')}`)
    failure = `apt-get install ${pkgs.join(' ')} failed: ${lastLine(r.stderr || r.stdout)}`
  }
  const out: Partial<Record<SystemName, string>> = {}
  for (const p of missing) {
    if (await hasCommand(p.command)) continue
    out[p.system] = failure
    print(`${p.system}: not measured (${failure})`)
  }
  return out
}

/** Kernel, CPUs, memory, node, and the disk the data is on (cold reads depend on its read-ahead). */
export function machineInfo(dataDir: string): SuiteResult['machine'] {
  return {
    kernel: release(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
    memGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    disk: deviceReadAhead(dataDir),
  }
}

/** The first line of `cmd --version` naming a version, or undefined. */
async function versionOf(cmd: string): Promise<string | undefined> {
  const r = await runCmd(cmd, ['--version'], { check: false }).catch(() => undefined)
  if (!r || r.code !== 0) return undefined
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim())
  const versioned = lines.filter((l) => /\d/.test(l))
  return versioned.find((l) => l.includes(cmd)) ?? versioned.find((l) => /version/i.test(l)) ?? lines.find(Boolean)
}

/** The checkout's commit, read from .git (no git process): HEAD, then its ref, loose or packed. */
function gitCommit(root: string): string | undefined {
  try {
    const git = join(root, '.git')
    const head = readFileSync(join(git, 'HEAD'), 'utf8').trim()
    if (!head.startsWith('ref: ')) return head
    const ref = head.slice(5)
    if (existsSync(join(git, ref))) return readFileSync(join(git, ref), 'utf8').trim()
    const packed = readFileSync(join(git, 'packed-refs'), 'utf8').split('\n').find((l) => l.endsWith(` ${ref}`))
    return packed?.split(' ')[0]
  } catch {
    return undefined
  }
}

export async function versions(): Promise<Record<string, string>> {
  const root = repoRoot()
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  const commit = gitCommit(root)
  const out: Record<string, string> = { strata: commit ? `${pkg.version} (${commit.slice(0, 12)})` : pkg.version, node: process.version, kernel: release() }
  for (const cmd of ['fuse-overlayfs', 'ostree', 'mount', 'tar', 'cp']) {
    const v = await versionOf(cmd)
    if (v) out[cmd] = v
  }
  return out
}
