import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RequestStats } from '../fuse/stats.js'

test('request stats: each opcode counted, most total time first', () => {
  const stats = new RequestStats()
  const now = performance.now()
  stats.answered('LOOKUP', now)
  stats.answered('LOOKUP', now)
  stats.answered('SETATTR', now - 50)
  const lines = stats.report().trimEnd().split('\n')
  assert.match(lines[0]!, /requests/)
  assert.equal(lines.length, 3)
  assert.match(lines[1]!, /^SETATTR\s+1\s/)
  assert.match(lines[2]!, /^LOOKUP\s+2\s/)
  const ms = Number(/([\d.]+) ms/.exec(lines[1]!)![1])
  assert.ok(ms >= 50, `SETATTR's total covers the 50 ms since it was taken (${ms})`)
})
