/**
 * Engine benchmarks: copy-up of a huge file, snapshot throughput against the LevelDB ceiling,
 * re-snapshot of an unchanged tree, stat cost versus layer count, stat through lower layers
 * (whole trees and deep stacks, store and directory layers), and dedup.
 *
 *   npm run bench:engine -- [--quick] [--json FILE] [--only copyup,stat] [--reps N] [--dir DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { cpus } from 'node:os'
import { parseArgs } from './lib/args.js'
import type { BenchCase, CaseResult } from './lib/case.js'
import { renderTable } from './lib/table.js'
import { copyUpCase } from './cases/copyup.js'
import { ingestCase } from './cases/ingest.js'
import { reSnapshotCase } from './cases/resnapshot.js'
import { statDepthCase } from './cases/statdepth.js'
import { dedupCase } from './cases/dedup.js'
import { lowerStatCase } from './cases/lowerstat.js'

const CASES: BenchCase[] = [copyUpCase, ingestCase, reSnapshotCase, statDepthCase, lowerStatCase, dedupCase]

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), CASES.map((c) => c.name))
  const reps = args.reps ?? (args.quick ? 3 : 7)
  const started = new Date()
  const log = (msg: string): void => { process.stderr.write(`${msg}\n`) }
  console.log(`# Strata engine bench — ${started.toISOString()}${args.quick ? ' (quick)' : ''}`)
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${reps} repetitions\n`)

  const results: Record<string, CaseResult | { error: string }> = {}
  for (const c of CASES) {
    if (args.only && !args.only.includes(c.name)) continue
    log(`== ${c.title}`)
    try {
      const r = await c.run({ args, reps, log })
      results[c.name] = r
      for (const t of r.tables) console.log(renderTable(t))
    } catch (err) {
      results[c.name] = { error: (err as Error).message }
      console.log(`### ${c.title}\n\nFAILED: ${(err as Error).stack ?? err}\n`)
      process.exitCode = 1
    }
  }
  if (args.json) {
    await mkdir(dirname(args.json), { recursive: true })
    await writeFile(args.json, JSON.stringify({ started: started.toISOString(), node: process.version, quick: args.quick, reps, results }, null, 2))
    log(`raw results written to ${args.json}`)
  }
}

await main()
