import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { warmWritePath } from '../fuse/warmup.js'

const leftovers = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('strata-warmup-'))

test('the write-path warm-up of a new daemon runs the engine end to end and leaves nothing behind', async () => {
  const before = new Set(leftovers())
  await warmWritePath()
  assert.deepEqual(leftovers().filter((n) => !before.has(n)), [])
})
