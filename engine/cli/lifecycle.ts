import { Option, type Command } from 'commander'
import type { DiffEntry, SnapshotInfo, SnapshotKind, WalkFilter } from '../types.js'
import { printJson, printText, withStore } from './context.js'
import { humanBytes, shortDate, table } from './format.js'

const parentText = (parent: string): string => (parent === '' ? 'the empty tree' : `'${parent}'`)

/** prepare, view, commit, rm: the containerd-style snapshot lifecycle. */
export function registerLifecycle(program: Command): void {
  program
    .command('prepare')
    .description('create an active (writable) snapshot on a committed parent, or on the empty tree')
    .argument('<key>', 'key of the new active snapshot')
    .argument('[parent]', 'committed snapshot to build on')
    .action((key: string, parent: string | undefined, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const info = await store.prepare(key, parent)
        if (json) printJson(info)
        else printText(`prepared active snapshot '${key}' on ${parentText(info.parent)}`)
      }),
    )

  program
    .command('view')
    .description('create a read-only view of a committed snapshot')
    .argument('<key>', 'key of the new view')
    .argument('<parent>', 'committed snapshot to view')
    .action((key: string, parent: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const info = await store.view(key, parent)
        if (json) printJson(info)
        else printText(`created view '${key}' of ${parentText(info.parent)}`)
      }),
    )

  program
    .command('commit')
    .description('seal an active snapshot as an immutable committed snapshot')
    .argument('<name>', 'name of the committed snapshot')
    .argument('<key>', 'active snapshot to commit')
    .action((name: string, key: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const info = await store.commit(name, key)
        if (json) printJson(info)
        else printText(`committed '${key}' as '${name}'`)
      }),
    )

  program
    .command('rm')
    .description('remove a snapshot (its data is reclaimed by gc)')
    .argument('<key>', 'snapshot to remove')
    .action((key: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        await store.remove(key)
        if (json) printJson({ removed: key })
        else printText(`removed '${key}'`)
      }),
    )
}

type Listed = SnapshotInfo & { size: number }

/** snapshots, usage, diff: reading about snapshots without opening their trees. */
export function registerInspection(program: Command): void {
  program
    .command('snapshots')
    .description('list snapshots with kind, parent, own size and creation time')
    .addOption(new Option('--kind <kind>', 'only snapshots of this kind').choices(['active', 'view', 'committed']))
    .option('--parent <name>', "only children of this snapshot ('' for the empty tree)")
    .option('--label <key[=value]>', 'only snapshots carrying this label')
    .action((opts: { kind?: SnapshotKind; parent?: string; label?: string }, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const filter: WalkFilter = { kind: opts.kind, parent: opts.parent, label: opts.label }
        const infos: SnapshotInfo[] = []
        for await (const info of store.walk(filter)) infos.push(info)
        infos.sort((a, b) => a.created - b.created || (a.name < b.name ? -1 : 1))
        const listed: Listed[] = []
        for (const info of infos) listed.push({ ...info, size: (await store.usage(info.name)).size })
        if (json) return printJson(listed)
        if (listed.length === 0) return
        const rows = listed.map((s) => [s.name, s.kind, s.parent === '' ? '-' : s.parent, humanBytes(s.size), shortDate(s.created)])
        printText(table(['NAME', 'KIND', 'PARENT', 'SIZE', 'CREATED'], rows, new Set([3])))
      }),
    )

  program
    .command('usage')
    .description("bytes and entries held by a snapshot's own layer (not its parents')")
    .argument('<key>', 'snapshot')
    .action((key: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const usage = await store.usage(key)
        if (json) return printJson(usage)
        printText(table(null, [['size', `${usage.size} (${humanBytes(usage.size)})`], ['inodes', String(usage.inodes)]]))
      }),
    )

  program
    .command('diff')
    .description('paths added (A), modified (M) and deleted (D) going from snapshot A to snapshot B')
    .argument('<a>', 'snapshot to compare from')
    .argument('<b>', 'snapshot to compare to')
    .action((a: string, b: string, _opts: object, cmd: Command) =>
      withStore(cmd, async (store, { json }) => {
        const changes: DiffEntry[] = await store.diff(a, b)
        if (json) return printJson(changes)
        const letter = { added: 'A', modified: 'M', deleted: 'D' } as const
        printText(changes.map((c) => `${letter[c.kind]} ${c.path}`).join('\n'))
      }),
    )
}
