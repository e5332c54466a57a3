import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface BenchArgs {
  /** Smaller sizes and fewer repetitions, for a check that the bench still runs. */
  quick: boolean
  /** Where to write the raw results as JSON. */
  json?: string
  /** Scratch directory for stores and host trees (deleted afterwards). */
  dir: string
  /** Only these cases (by name), when given. */
  only?: string[]
  /** Repetitions override. */
  reps?: number
}

/** bench/results/tmp under the project (ignored by git); the compiled script lives in dist/bench/lib. */
const defaultScratch = (): string => resolve(fileURLToPath(import.meta.url), '../../../../bench/results/tmp')

const USAGE = `options:
  --quick          smaller data and fewer repetitions
  --json FILE      write raw results as JSON
  --dir DIR        scratch directory (default bench/results/tmp)
  --only a,b       run only these cases
  --reps N         repetitions per measurement`

export function parseArgs(argv: string[], caseNames: string[] = []): BenchArgs {
  const out: BenchArgs = { quick: false, dir: defaultScratch() }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) fail(`${a} needs a value`)
      return v
    }
    if (a === '--quick') out.quick = true
    else if (a === '--json') out.json = resolve(value())
    else if (a === '--dir') out.dir = resolve(value())
    else if (a === '--only') out.only = value().split(',').filter(Boolean)
    else if (a === '--reps') out.reps = Number(value())
    else if (a === '--help' || a === '-h') { console.log(USAGE + (caseNames.length ? `\ncases: ${caseNames.join(', ')}` : '')); process.exit(0) }
    else fail(`unknown option ${a}`)
  }
  if (out.reps !== undefined && !(Number.isInteger(out.reps) && out.reps > 0)) fail('--reps needs a positive integer')
  for (const o of out.only ?? []) if (caseNames.length && !caseNames.includes(o)) fail(`unknown case ${o}; cases: ${caseNames.join(', ')}`)
  return out
}

function fail(msg: string): never {
  console.error(`${msg}\n${USAGE}`)
  process.exit(2)
}
