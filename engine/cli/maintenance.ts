import { Option, type Command } from 'commander'
import { Store } from '../store.js'
import type { RepairReport } from '../types.js'
import { CliError, globalOptions, printJson, printText, withStore } from './context.js'
import { cliIo } from './io.js'
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
    .addOption(new Option('--repair', 'rebuild a store that no longer opens from what LevelDB can still read (db/ is copied aside first), and report what was lost').conflicts('verifyData'))
    .action((opts: { verifyData?: boolean; repair?: boolean }, cmd: Command) =>
      opts.repair ? repair(cmd) : withStore(cmd, async (store, { json }) => {
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

/**
 * fsck --repair. Runs in this process, never in a server: the repair needs the store closed, and
 * refuses it (EBUSY, naming the holder) while any process, a mount daemon included, has it open.
 */
async function repair(cmd: Command): Promise<void> {
  const { store: path, json } = globalOptions(cmd)
  if (cliIo().store) throw new CliError(`store ${path} is open in this server; stop its mounts before repairing it`)
  const report = await Store.repair({ path })
  if (json) printJson(report)
  else printText(repairText(report))
  if (!report.ok) throw new CliError(`the repair of store ${path} could not salvage everything; what was lost is listed above`)
}

function repairText(r: RepairReport): string {
  const lines = [`rebuilt the database of store ${r.store}${r.backup ? ` (db/ as it was: ${r.backup})` : ''}`]
  if (r.found) lines.push(`LevelDB found: ${r.found}`)
  if (r.lostTables > 0) lines.push(`LOST: ${r.lostTables} table file(s) of the database, missing or unreadable; their records are gone, and a snapshot whose records were all in them cannot be named`)
  const counts = Object.entries(r.records).map(([prefix, n]) => `${prefix} ${n}`).join(', ')
  lines.push(`salvaged records: ${counts || 'none'}`)
  // LevelDB moves every old manifest and log it carried over to db/lost/, and every table it could not read
  const unreadable = r.setAside.filter((f) => /\.(ldb|sst)$/.test(f))
  const replaced = r.setAside.filter((f) => !unreadable.includes(f))
  if (unreadable.length > 0) lines.push(`tables LevelDB could not read (moved aside): ${unreadable.join(', ')}`)
  if (replaced.length > 0) lines.push(`manifests and logs replaced (moved aside): ${replaced.join(', ')}`)
  if (r.rewritten.length > 0) lines.push(`rewritten: ${r.rewritten.join('; ')}`)
  lines.push(`intact snapshots (${r.intact.length}): ${r.intact.join(', ') || '-'}`)
  for (const d of r.damaged) {
    lines.push(`LOST in snapshot '${d.name}' (${d.kind}):${d.problems.length > 0 ? ` ${d.problems.join('; ')}` : ''}`)
    for (const p of d.paths) lines.push(`  ${p.path}: ${p.problem}`)
  }
  if (r.lostSnapshots.length > 0) lines.push(`LOST snapshots (named as parents, their records are gone): ${r.lostSnapshots.join(', ')}`)
  if (r.orphanLayers.length > 0) lines.push(`layers no snapshot owns (records of a lost snapshot; gc deletes them): ${r.orphanLayers.join(', ')}`)
  if (r.unreferencedPacks.length > 0) lines.push(`packs no chunk pointer names (data of lost records; gc deletes them): ${r.unreferencedPacks.join(', ')}`)
  lines.push(r.ok ? 'nothing was lost' : 'some data was lost (above); move packs/ aside before a gc if you mean to recover more by other means')
  lines.push('the repair looks for every record and chunk; `strata fsck --verify-data` also checks their bytes')
  return lines.join('\n')
}
