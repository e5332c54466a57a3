import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, chownSync, copyFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { acrossSystems, cannotCompare, type Mounted, type User } from './parity-mounts.js'
import type { Outcome, Step } from './probe-runner.js'

/**
 * A set-id program in a lower layer, writable by a group: a member of the group who overwrites
 * it through a mount and runs it at once must run it as themselves, never as its owner, as on
 * the kernel's overlayfs. The kernel caches a FUSE file's mode and exec trusts that cache, so
 * every path that takes set-id bits off must reach it before the call returns: write (with the
 * copy-up of the first write), truncate, open with O_TRUNC, chown. Each case runs in the kernel
 * overlay and in both kinds of Strata mount, and the outcomes (the program's `id` output, the
 * mode seen right after) must be the same.
 */

const ID = '/usr/bin/id'
/** Test ids no account uses: the program's group, a member of it, and an outsider's group. */
const G = 4242
const MEMBER: User = { uid: 4243, gid: 4244, groups: [G] }
/** Outside G: write permission on the program through 'other'. */
const OUTSIDER: User = { uid: 4245, gid: 4246, groups: [] }
const ROOT = null

function buildLower(lower: string): void {
  // root's id, setuid, group-writable by G; setgid variants (group-executable or not); one owned by the member
  const progs: [string, number, number, number][] = [
    ['suid', 0, G, 0o4775], ['suid-trunc', 0, G, 0o4775], ['suid-otrunc', 0, G, 0o4775], ['suid-ftrunc', 0, G, 0o4775],
    ['sgid', 0, G, 0o2775], ['sgid-noexec', 0, G, 0o2765], ['both', 0, G, 0o6775],
    ['own-suid', MEMBER.uid, MEMBER.gid, 0o4755], ['root-chown', 0, G, 0o6775], ['root-write', 0, G, 0o6775], ['sgid-noexec-other', 0, G, 0o2767],
  ]
  for (const [name, uid, gid, mode] of progs) {
    copyFileSync(ID, join(lower, name))
    chownSync(join(lower, name), uid, gid)
    chmodSync(join(lower, name), mode)
  }
}

interface Case {
  name: string
  user: User | null
  steps: (mnt: string) => Step[]
}

/** Truncating the program to its own length changes no byte: it still runs, bits or no bits. */
const idSize = existsSync(ID) ? statSync(ID).size : 0

const CASES: Case[] = [
  // the reported sequence: open O_WRONLY without O_TRUNC, write at offset 0, close, exec
  { name: 'write over a setuid program, then exec', user: MEMBER, steps: (m) => [['pwriteFile', `${m}/suid`, ID], ['exec', `${m}/suid`], ['stat', `${m}/suid`]] },
  { name: 'truncate(2) to its own size, then exec', user: MEMBER, steps: (m) => [['truncate', `${m}/suid-trunc`, idSize], ['exec', `${m}/suid-trunc`], ['stat', `${m}/suid-trunc`]] },
  { name: 'ftruncate(2) to its own size, then exec', user: MEMBER, steps: (m) => [['ftruncate', `${m}/suid-ftrunc`, idSize], ['exec', `${m}/suid-ftrunc`], ['stat', `${m}/suid-ftrunc`]] },
  { name: 'open with O_TRUNC and write it again, then exec', user: MEMBER, steps: (m) => [['truncWriteFile', `${m}/suid-otrunc`, ID], ['exec', `${m}/suid-otrunc`], ['stat', `${m}/suid-otrunc`]] },
  { name: 'write over a setgid (group-exec) program, then exec', user: MEMBER, steps: (m) => [['pwriteFile', `${m}/sgid`, ID], ['exec', `${m}/sgid`], ['stat', `${m}/sgid`]] },
  { name: 'write over setgid without group exec (kept: the writer is in the group)', user: MEMBER, steps: (m) => [['pwriteFile', `${m}/sgid-noexec`, ID], ['stat', `${m}/sgid-noexec`]] },
  { name: 'write over setgid without group exec by an outsider (dropped as of Linux 6.x)', user: OUTSIDER, steps: (m) => [['pwrite', `${m}/sgid-noexec-other`, 'x'], ['stat', `${m}/sgid-noexec-other`]] },
  { name: 'write over setuid+setgid, then exec', user: MEMBER, steps: (m) => [['pwriteFile', `${m}/both`, ID], ['exec', `${m}/both`], ['stat', `${m}/both`]] },
  { name: 'chgrp by the owner drops setuid', user: MEMBER, steps: (m) => [['chown', `${m}/own-suid`, -1, G], ['stat', `${m}/own-suid`]] },
  { name: 'chown by root drops setuid (and group-exec setgid)', user: ROOT, steps: (m) => [['chown', `${m}/root-chown`, 0, G], ['stat', `${m}/root-chown`]] },
  // root writing keeps the bits (CAP_FSETID)
  { name: 'write by root keeps the bits', user: ROOT, steps: (m) => [['pwriteFile', `${m}/root-write`, ID], ['stat', `${m}/root-write`]] },
]

/** Replaces the mount path in outcomes, so that systems compare. */
const portable = (outs: Outcome[], mnt: string): Outcome[] => JSON.parse(JSON.stringify(outs).split(mnt).join('MNT')) as Outcome[]

test('set-id bits a write, truncate or chown removes are gone before the call returns, in every mount kind', { timeout: 300_000 }, async (t) => {
  const reason = cannotCompare()
  if (reason) return t.skip(reason)
  if (!existsSync(ID)) return t.skip(`no ${ID}`)
  const results = new Map<string, Map<string, Outcome[]>>()
  await acrossSystems(buildLower, async (sys: Mounted) => {
    for (const c of CASES) {
      const outs = portable(await sys.as(c.user, c.steps(sys.mnt)), sys.mnt)
      if (!results.has(c.name)) results.set(c.name, new Map())
      results.get(c.name)!.set(sys.name, outs)
    }
  })
  for (const c of CASES) {
    const bySystem = results.get(c.name)!
    const kernel = bySystem.get('kernel overlayfs')!
    for (const [name, outs] of bySystem) {
      t.diagnostic(`${c.name} [${name}]: ${JSON.stringify(outs)}`)
      // exec comes straight after the change: a stat in between would refresh the kernel's attributes
      for (const o of outs) {
        // whatever ran did so as the caller: no effective ids of root or of the program's group
        if (o.ok && o.value?.startsWith('uid=')) {
          assert.doesNotMatch(o.value, /euid=|egid=/, `${c.name} [${name}]: the program ran with its owner's ids: ${o.value}`)
        }
      }
      assert.deepEqual(outs, kernel, `${c.name}: ${name} differs from the kernel's overlayfs`)
    }
  }
  // the sequence did exec the program, as the member, everywhere
  for (const [name, outs] of results.get(CASES[0]!.name)!) {
    const ran = outs[1]!
    assert.ok(ran.ok && ran.value?.startsWith(`uid=${MEMBER.uid} gid=${MEMBER.gid}`), `${name}: ${JSON.stringify(ran)}`)
    assert.equal(outs[2]!.ok && outs[2]!.value?.split(' ')[0], '100775', `${name}: setuid is gone from the mode stat shows`)
  }
})
