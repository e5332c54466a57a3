import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, chownSync, lchownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { acrossSystems, cannotCompare, SYSTEMS, type Mounted, type User } from './parity-mounts.js'
import type { Outcome, Step } from './probe-runner.js'

/**
 * What two non-root users sharing a group may do in a merged tree, probe by probe, compared with
 * the kernel's overlayfs: read/write/exec by owner, group and others; chmod and chown by others
 * than the owner; set-id bits dropped by writes, truncates, chown and chmod; sticky directories;
 * symlinks; renames across owners; creating in directories without w or x. Every probe's
 * outcomes (values or errno codes, modes and owners after) must equal the kernel's.
 */

const SHARED = 4300
const FOREIGN = 4399
const ALICE: User = { uid: 4301, gid: 4301, groups: [SHARED] }
const BOB: User = { uid: 4302, gid: 4302, groups: [SHARED] }
const A = ALICE.uid
const B = BOB.uid
const SCRIPT = '#!/bin/sh\necho ran\n'

/** [path, kind, uid, gid, mode] of the lower tree, parents first. */
type Entry = [string, 'file' | 'dir' | 'script' | 'link', number, number, number, string?]
const TREE: Entry[] = [
  ['alice-only', 'file', A, A, 0o600],
  ['group-rw', 'file', A, SHARED, 0o660],
  ['group-r', 'file', A, SHARED, 0o640],
  ['world-r', 'file', A, A, 0o644],
  ['run-owner', 'script', A, A, 0o700],
  ['run-group', 'script', A, SHARED, 0o750],
  ['run-none', 'script', A, A, 0o644],
  ['foreign-group', 'file', A, FOREIGN, 0o644],
  ['own-file', 'file', A, A, 0o644],
  ['suid-group-w', 'file', A, SHARED, 0o4770],
  ['sgid-group-w', 'file', A, SHARED, 0o2770],
  ['suid-trunc', 'file', A, SHARED, 0o6770],
  ['suid-chown', 'file', A, A, 0o4755],
  ['closed', 'dir', A, A, 0o755],
  ['closed/inside', 'file', A, A, 0o644],
  ['no-search', 'dir', A, SHARED, 0o760],
  ['no-search/inside', 'file', A, SHARED, 0o666],
  ['sticky', 'dir', 0, 0, 0o1777],
  ['sticky/alice-file', 'file', A, A, 0o666],
  ['sticky/bob-file', 'file', B, B, 0o644],
  ['sticky/alice-dir', 'dir', A, A, 0o777],
  ['shared', 'dir', 0, SHARED, 0o775],
  ['shared/alice-file', 'file', A, A, 0o644],
  ['shared/alice-dir', 'dir', A, A, 0o755],
  ['shared/bob-dir', 'dir', B, B, 0o755],
  ['sgid-dir', 'dir', A, SHARED, 0o2775],
  ['link-group-r', 'link', A, A, 0o777, 'group-r'],
  ['link-alice-only', 'link', A, A, 0o777, 'alice-only'],
  ['bob-link', 'link', B, B, 0o777, 'world-r'],
]

function build(lower: string): void {
  for (const [path, kind, uid, gid, mode, target] of TREE) {
    const p = join(lower, path)
    if (kind === 'dir') mkdirSync(p)
    else if (kind === 'link') symlinkSync(target!, p)
    else writeFileSync(p, kind === 'script' ? SCRIPT : `${path}\n`)
    if (kind === 'link') lchownSync(p, uid, gid)
    else {
      chownSync(p, uid, gid)
      chmodSync(p, mode)
    }
  }
}

interface Probe {
  name: string
  user: User
  steps: Step[]
}

/** Steps are written with paths relative to the mount ('@/x'); the mount is put in at run time. */
const at = (mnt: string, steps: Step[]): Step[] => steps.map(([op, ...args]) => [op, ...args.map((a) => (typeof a === 'string' && a.startsWith('@/') ? join(mnt, a.slice(2)) : a))] as Step)

const PROBES: Probe[] = [
  // read, write, exec by owner, group, others
  { name: 'owner reads a 0600 file', user: ALICE, steps: [['read', '@/alice-only']] },
  { name: 'another user cannot read a 0600 file', user: BOB, steps: [['read', '@/alice-only'], ['access', '@/alice-only', 4]] },
  { name: 'group member writes a 0660 file', user: BOB, steps: [['pwrite', '@/group-rw', 'B'], ['read', '@/group-rw'], ['stat', '@/group-rw']] },
  { name: 'group member cannot write a 0640 file', user: BOB, steps: [['pwrite', '@/group-r', 'B'], ['read', '@/group-r'], ['access', '@/group-r', 2]] },
  { name: 'others read a 0644 file but cannot write it', user: BOB, steps: [['read', '@/world-r'], ['append', '@/world-r', 'B'], ['truncate', '@/world-r', 0]] },
  { name: 'owner runs a 0700 script', user: ALICE, steps: [['exec', '@/run-owner']] },
  { name: 'others cannot run a 0700 script', user: BOB, steps: [['exec', '@/run-owner'], ['access', '@/run-owner', 1]] },
  { name: 'group member runs a 0750 script', user: BOB, steps: [['exec', '@/run-group']] },
  { name: 'nobody runs a file without x', user: ALICE, steps: [['exec', '@/run-none'], ['access', '@/run-none', 1]] },
  // chmod, chown
  { name: 'chmod by another user: EPERM', user: BOB, steps: [['chmod', '@/group-rw', '777'], ['stat', '@/group-rw']] },
  { name: 'owner chmods their file', user: ALICE, steps: [['chmod', '@/own-file', '600'], ['stat', '@/own-file'], ['chmod', '@/own-file', '644']] },
  { name: 'chown to another user: EPERM even for the owner', user: ALICE, steps: [['chown', '@/own-file', B, -1], ['stat', '@/own-file']] },
  { name: 'owner chgrps to a group of theirs', user: ALICE, steps: [['chown', '@/own-file', -1, SHARED], ['stat', '@/own-file']] },
  { name: 'owner cannot chgrp to a group not theirs', user: ALICE, steps: [['chown', '@/own-file', -1, FOREIGN], ['stat', '@/own-file']] },
  { name: 'chown by another user: EPERM', user: BOB, steps: [['chown', '@/group-rw', -1, SHARED], ['chown', '@/group-rw', B, -1]] },
  { name: "setting another user's file times: EPERM even with write permission", user: BOB, steps: [['utimes', '@/group-rw', 1000, 2000]] },
  { name: 'setting own file times', user: ALICE, steps: [['utimes', '@/own-file', 1000, 2000]] },
  { name: 'chown to the same ids by the owner', user: ALICE, steps: [['chown', '@/world-r', A, A], ['stat', '@/world-r']] },
  // set-id bits
  { name: 'setuid dropped on a write by a group member', user: BOB, steps: [['pwrite', '@/suid-group-w', 'B'], ['stat', '@/suid-group-w']] },
  { name: 'setgid without group exec kept on a write by a group member', user: BOB, steps: [['pwrite', '@/sgid-group-w', 'B'], ['stat', '@/sgid-group-w']] },
  { name: 'setuid and group-exec setgid dropped on truncate by a group member', user: BOB, steps: [['truncate', '@/suid-trunc', 3], ['stat', '@/suid-trunc']] },
  { name: 'setuid dropped when the owner chgrps', user: ALICE, steps: [['chown', '@/suid-chown', -1, SHARED], ['stat', '@/suid-chown']] },
  { name: 'chmod g+s by an owner outside the file group: setgid silently dropped', user: ALICE, steps: [['chmod', '@/foreign-group', '2755'], ['stat', '@/foreign-group']] },
  { name: 'chmod u+s,g+s by the owner in the group: kept', user: ALICE, steps: [['chmod', '@/world-r', '6755'], ['stat', '@/world-r'], ['chmod', '@/world-r', '644']] },
  { name: 'files made in a setgid dir take its group', user: BOB, steps: [['create', '@/sgid-dir/bob-new', 'x'], ['stat', '@/sgid-dir/bob-new'], ['mkdir', '@/sgid-dir/bob-sub'], ['stat', '@/sgid-dir/bob-sub']] },
  // sticky directories
  { name: "sticky dir: another user's file cannot be unlinked", user: BOB, steps: [['unlink', '@/sticky/alice-file'], ['stat', '@/sticky/alice-file']] },
  { name: "sticky dir: another user's file cannot be renamed", user: BOB, steps: [['rename', '@/sticky/alice-file', '@/sticky/taken'], ['readdir', '@/sticky']] },
  { name: "sticky dir: another user's dir cannot be removed", user: BOB, steps: [['rmdir', '@/sticky/alice-dir']] },
  { name: "sticky dir: writing another user's writable file is allowed", user: BOB, steps: [['pwrite', '@/sticky/alice-file', 'B'], ['read', '@/sticky/alice-file']] },
  { name: 'sticky dir: the owner removes their file', user: BOB, steps: [['unlink', '@/sticky/bob-file'], ['readdir', '@/sticky']] },
  { name: 'sticky dir: a new file, then removed by its maker', user: ALICE, steps: [['create', '@/sticky/alice-new', 'a'], ['stat', '@/sticky/alice-new'], ['rename', '@/sticky/alice-new', '@/sticky/alice-moved'], ['unlink', '@/sticky/alice-moved']] },
  // symlinks
  { name: 'a symlink is followed with the target permissions', user: BOB, steps: [['read', '@/link-group-r'], ['read', '@/link-alice-only'], ['readlink', '@/link-alice-only']] },
  { name: "lchown of another user's symlink: EPERM", user: BOB, steps: [['lchown', '@/link-group-r', -1, SHARED], ['lstat', '@/link-group-r']] },
  { name: 'lchown of an own symlink to a group of theirs', user: BOB, steps: [['lchown', '@/bob-link', -1, SHARED], ['lstat', '@/bob-link'], ['stat', '@/bob-link']] },
  { name: 'chown through a symlink changes the target (not owned: EPERM)', user: BOB, steps: [['chown', '@/bob-link', -1, SHARED], ['stat', '@/bob-link']] },
  { name: 'a new symlink belongs to its maker', user: BOB, steps: [['symlink', 'group-rw', '@/shared/bob-link'], ['lstat', '@/shared/bob-link'], ['read', '@/shared/bob-link']] },
  // renames across owners
  { name: "renaming another user's file within a group-writable dir", user: BOB, steps: [['rename', '@/shared/alice-file', '@/shared/renamed-by-bob'], ['stat', '@/shared/renamed-by-bob'], ['readdir', '@/shared']] },
  { name: 'renaming into a dir without write permission: EACCES', user: BOB, steps: [['rename', '@/shared/renamed-by-bob', '@/closed/moved'], ['readdir', '@/closed']] },
  { name: "moving another user's dir to another parent needs write on the dir: EACCES", user: BOB, steps: [['rename', '@/shared/alice-dir', '@/shared/bob-dir/alice-dir'], ['readdir', '@/shared']] },
  { name: "renaming another user's dir in the same parent", user: BOB, steps: [['rename', '@/shared/alice-dir', '@/shared/alice-dir-renamed'], ['stat', '@/shared/alice-dir-renamed']] },
  { name: 'hard link to a file neither owned nor writable: EPERM (protected_hardlinks)', user: BOB, steps: [['link', '@/world-r', '@/shared/bob-hardlink']] },
  // creating without w or x
  { name: 'create in a dir without write permission: EACCES', user: BOB, steps: [['create', '@/closed/new', 'x'], ['mkdir', '@/closed/newdir'], ['unlink', '@/closed/inside']] },
  { name: 'a dir without search permission: names listed, nothing reached', user: BOB, steps: [['readdir', '@/no-search'], ['stat', '@/no-search/inside'], ['read', '@/no-search/inside'], ['create', '@/no-search/new', 'x'], ['mkdir', '@/no-search/d']] },
  { name: 'the owner makes and removes in their own dir', user: ALICE, steps: [['create', '@/closed/new', 'x'], ['stat', '@/closed/new'], ['mkdir', '@/closed/newdir', '700'], ['stat', '@/closed/newdir'], ['rmdir', '@/closed/newdir'], ['unlink', '@/closed/new']] },
  { name: "removing a file in another user's dir without w: EACCES", user: BOB, steps: [['unlink', '@/closed/inside'], ['rename', '@/closed/inside', '@/shared/stolen']] },
]

test('permission parity: two users and a shared group, probe by probe against the kernel overlayfs, in both Strata mount kinds', { timeout: 300_000 }, async (t) => {
  const reason = cannotCompare()
  if (reason) return t.skip(reason)
  const outcomes = new Map<string, Outcome[][]>()
  await acrossSystems(build, async (sys: Mounted) => {
    const got: Outcome[][] = []
    for (const p of PROBES) {
      const outs = await sys.as(p.user, at(sys.mnt, p.steps))
      got.push(JSON.parse(JSON.stringify(outs).split(sys.mnt).join('@')) as Outcome[])
    }
    outcomes.set(sys.name, got)
  })
  const kernel = outcomes.get('kernel overlayfs')!
  const mismatches: string[] = []
  let compared = 0
  for (const name of SYSTEMS.slice(1)) {
    const got = outcomes.get(name)!
    PROBES.forEach((p, i) => {
      compared++
      const want = JSON.stringify(kernel[i])
      const have = JSON.stringify(got[i])
      if (want !== have) mismatches.push(`${name}: ${p.name}\n    kernel: ${want}\n    strata: ${have}`)
    })
  }
  // the probes must test something: denials and successes both occur
  const codes = kernel.flat().map((o) => (o.ok ? 'ok' : o.code))
  for (const code of ['ok', 'EACCES', 'EPERM']) assert.ok(codes.includes(code), `the kernel's outcomes include ${code}`)
  t.diagnostic(`${PROBES.length} probes (${PROBES.reduce((n, p) => n + p.steps.length, 0)} steps) x ${SYSTEMS.length - 1} Strata mount kinds: ${compared - mismatches.length} of ${compared} matched the kernel overlayfs`)
  assert.deepEqual(mismatches, [], `outcomes differing from the kernel overlayfs:\n${mismatches.join('\n')}`)
})
