import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { ROOT, type Creds } from '../../engine/index.js'

/**
 * renameat2(2) with flags (RENAME_NOREPLACE, RENAME_EXCHANGE) for the kernel side: node has no
 * binding for it, so one python3 process per test process calls it through ctypes, a request per
 * line. Without python3 the harness generates no renames with flags.
 */

export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2

const SCRIPT = `
import ctypes, errno, json, os, sys
f = ctypes.CDLL(None, use_errno=True).renameat2
f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
g0 = os.getgroups()
for line in sys.stdin:
    a, b, flags, uid, gid, groups = json.loads(line)
    os.setgroups(groups); os.setegid(gid); os.seteuid(uid)
    ok = f(-100, a.encode(), -100, b.encode(), flags) == 0
    e = 0 if ok else ctypes.get_errno()
    os.seteuid(0); os.setegid(0); os.setgroups(g0)
    print('OK' if ok else errno.errorcode.get(e, 'E%d' % e), flush=True)
`

export const renameat2Available: boolean = spawnSync('python3', ['-c', SCRIPT], { input: '', timeout: 10000 }).status === 0

interface Helper { proc: ChildProcessWithoutNullStreams; waiting: Array<(line: string) => void> }
let helper: Helper | undefined

/** The helper keeps this process alive only while an answer is awaited; it ends at exit, with its stdin. */
function hold(h: Helper, on: boolean): void {
  for (const x of [h.proc, h.proc.stdin, h.proc.stdout, h.proc.stderr] as unknown as Array<{ ref(): void; unref(): void }>) {
    if (on) x.ref()
    else x.unref()
  }
}

function start(): Helper {
  const proc = spawn('python3', ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
  const h: Helper = { proc, waiting: [] }
  hold(h, false)
  createInterface({ input: proc.stdout }).on('line', (line) => {
    h.waiting.shift()?.(line)
    if (h.waiting.length === 0) hold(h, false)
  })
  proc.on('exit', () => {
    for (const w of h.waiting.splice(0)) w('EIO')
    if (helper === h) helper = undefined
  })
  return h
}

/** renameat2 on host paths, as `creds` (root by default); fails with an error whose `code` is the errno name. */
export async function renameat2(from: string, to: string, flags: number, creds: Creds = ROOT): Promise<void> {
  const h = helper
  if (!h) throw Object.assign(new Error('the renameat2 helper is not running'), { code: 'EIO' })
  const answer = await new Promise<string>((resolve) => {
    h.waiting.push(resolve)
    hold(h, true)
    h.proc.stdin.write(`${JSON.stringify([from, to, flags, creds.uid, creds.gid, creds.groups ?? []])}\n`)
  })
  if (answer !== 'OK') throw Object.assign(new Error(`${answer}: renameat2 '${from}' -> '${to}' flags ${flags}`), { code: answer })
}

// started now, while this process still runs as root: ops as other users switch its effective ids
if (renameat2Available) helper = start()
