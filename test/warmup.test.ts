import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, rmSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { warmWritePath } from '../fuse/warmup.js'

const leftovers = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('strata-warmup-'))

test('the write-path warm-up of a new daemon runs the engine end to end and leaves nothing behind', async () => {
  const before = new Set(leftovers())
  await warmWritePath()
  assert.deepEqual(leftovers().filter((n) => !before.has(n)), [])
})

test('a warm-up removes what a daemon killed during an earlier one left, and nothing recent', async () => {
  const old = join(tmpdir(), 'strata-warmup-leftover-test')
  const recent = join(tmpdir(), 'strata-warmup-recent-test')
  mkdirSync(join(old, 'db'), { recursive: true })
  mkdirSync(recent, { recursive: true })
  const hourAgo = new Date(Date.now() - 3600_000)
  utimesSync(old, hourAgo, hourAgo)
  try {
    await warmWritePath()
    assert.deepEqual(leftovers().filter((n) => n.endsWith('-test')), ['strata-warmup-recent-test'])
  } finally {
    for (const d of [old, recent]) rmSync(d, { recursive: true, force: true })
  }
})
