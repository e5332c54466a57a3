import type { Command } from 'commander'
import { CliError, printJson, printText, withStore } from './context.js'
import { humanBytes, table } from './format.js'

/** gc and fsck: keeping the store itself in order. */
export function registerMaintenance(program: Command): void {
  program
    .command('gc')
    .description('reclaim chunks, index nodes and layers no snapshot uses any more')
    .action((_opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const report = await store.gc()
        if (json) return printJson(report)
        printText(
          table(null, [
            ['interrupted imports removed', String(report.orphansRemoved)],
            ['chunks removed', `${report.chunksRemoved} (${humanBytes(report.bytesRemoved)})`],
            ['index nodes removed', String(report.nodesRemoved)],
            ['layers removed', String(report.layersRemoved)],
            ['packs removed', `${report.packsRemoved} (${humanBytes(report.packBytesFreed)} freed, ${humanBytes(report.bytesRepacked)} of live chunks copied)`],
          ]),
        )
      }),
    )

  program
    .command('fsck')
    .description('check the store for consistency; exits 1 when problems are found')
    .option('--verify-data', 'also read every chunk and inline content and check it against its hash, naming the snapshots and paths that read damage')
    .action((opts: { verifyData?: boolean }, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const report = await store.fsck({ verifyData: opts.verifyData === true })
        if (json) printJson(report)
        else {
          const c = report.checked
          const unverifiable = c.unverifiable ? `; ${c.unverifiable} inline contents written before format 3 have no checksum to verify` : ''
          const counts = `${c.snapshots} snapshots, ${c.layers} layers, ${c.inodes} inodes, ${c.chunks} chunks, ${c.nodes} index nodes${unverifiable}`
          printText(report.ok ? `ok: checked ${counts}` : [...report.problems, `checked ${counts}`].join('\n'))
        }
        if (!report.ok) throw new CliError(`fsck found ${report.problems.length} problem(s) in store ${store.path}`)
      }),
    )
}
