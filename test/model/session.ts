import type { FileHandle, SnapshotFs } from '../../engine/index.js'
import { type InoMap, diffOutcome } from './compare.js'
import { bytesLabel, storeOutcome } from './ops.js'
import type { OpGen } from './gen.js'
import { CALLERS, type Caller } from './perm.js'
import type { FsModel, OpenFlag } from './tree.js'
import { dataValue, type MNode, type Outcome } from './values.js'

/**
 * A run of handle operations on open files: one or two handles (perhaps on two names of one
 * inode), reads, writes, truncates and fstats through them, with the file unlinked or replaced
 * under them now and then. Checks that every handle on an inode sees the same data across
 * copy-up, and that an unlinked file stays usable until closed.
 */

interface OpenPair {
  flag: OpenFlag
  model: MNode
  store: FileHandle
}

export interface SessionContext {
  gen: OpGen
  model: FsModel
  /** The snapshot's fs for each of CALLERS. */
  fsAs: SnapshotFs[]
  inos: InoMap
  /** Records one step of the session in the run's log. */
  log: (line: string) => void
}

const writable = (f: OpenFlag): boolean => f !== 'r'
const isFile = (n: MNode): boolean => n.kind === 'file'

/** Runs one session, all of it as one caller; returns the first difference found, or undefined. */
export async function runSession(ctx: SessionContext): Promise<string | undefined> {
  const { gen, model } = ctx
  const rng = gen.rng
  const as = gen.caller()
  const run: RunAs = { ...ctx, fs: ctx.fsAs[as], caller: CALLERS[as] }
  if (as !== 0) ctx.log(`  as uid ${run.caller.uid}`)
  const handles: OpenPair[] = []
  try {
    const first = gen.path(model, isFile, { followLast: true })
    const problem = await openBoth(run, first, rng.pick<OpenFlag>(['r+', 'r+', 'w+', 'a+', 'r']), handles)
    if (problem || handles.length === 0) return problem
    if (rng.chance(0.5)) {
      const second = rng.chance(0.3) ? first : (gen.existing(model, isFile, { followLast: true }) ?? first)
      const p = await openBoth(run, second, rng.pick<OpenFlag>(['r', 'r+']), handles)
      if (p) return p
    }
    const steps = rng.range(2, 8)
    for (let i = 0; i < steps; i++) {
      const p = await step(run, handles, first)
      if (p) return p
    }
    return undefined
  } finally {
    for (const h of handles) await h.store.close()
  }
}

interface RunAs extends SessionContext {
  fs: SnapshotFs
  caller: Caller
}

async function openBoth(ctx: RunAs, path: string, flag: OpenFlag, handles: OpenPair[]): Promise<string | undefined> {
  ctx.log(`  open ${path} ${flag} -> h${handles.length}`)
  ctx.model.caller = ctx.caller
  const m = ctx.model.tryOpen(path, flag, 0o644)
  let store: FileHandle | undefined
  const act = await storeOutcome(async () => { store = await ctx.fs.open(path, flag, 0o644) })
  const exp: Outcome = 'node' in m ? { ok: true } : { ok: false, code: m.code }
  const diff = diffOutcome(exp, act, ctx.inos)
  if (diff.length > 0) {
    await store?.close()
    return diff.join('; ')
  }
  // a dir opened for reading has no data to drive: only files are kept for the steps
  if ('node' in m && m.node.kind === 'dir') await store?.close()
  else if ('node' in m && store) handles.push({ flag, model: m.node, store })
  return undefined
}

async function step(ctx: RunAs, handles: OpenPair[], firstPath: string): Promise<string | undefined> {
  const { gen, model, fs } = ctx
  const rng = gen.rng
  model.caller = ctx.caller
  const hi = rng.int(handles.length)
  const h = handles[hi]
  const kind = rng.weighted([['write', writable(h.flag) ? 5 : 0], ['read', 4], ['truncate', writable(h.flag) ? 2 : 0], ['fstat', 2], ['unlink', 1], ['replace', 1]] as const)
  const check = (exp: Outcome, act: Outcome): string | undefined => {
    const d = diffOutcome(exp, act, ctx.inos)
    return d.length > 0 ? d.join('; ') : undefined
  }
  switch (kind) {
    case 'write': {
      const append = h.flag === 'a+'
      const pos = append ? h.model.data.length : gen.position(h.model.data.length)
      const data = gen.dataAt(pos)
      ctx.log(`  h${hi} write @${append ? 'end' : pos} ${bytesLabel(data)}`)
      model.writeNode(h.model, pos, data, ctx.caller)
      return check({ ok: true }, await storeOutcome(async () => { await h.store.write(data, 0, data.length, append ? undefined : pos) }))
    }
    case 'read': {
      const pos = rng.chance(0.3) ? 0 : gen.position(h.model.data.length)
      const len = rng.chance(0.3) ? h.model.data.length : rng.range(0, 3 * 65536)
      ctx.log(`  h${hi} read @${pos} ${len}`)
      const exp = dataValue(model.readNode(h.model, pos, len))
      return check({ ok: true, value: exp }, await storeOutcome(async () => {
        const buf = Buffer.alloc(len)
        const { bytesRead } = await h.store.read(buf, 0, len, pos)
        return dataValue(buf.subarray(0, bytesRead))
      }))
    }
    case 'truncate': {
      const len = gen.length(h.model.data.length)
      ctx.log(`  h${hi} ftruncate ${len}`)
      model.truncateNode(h.model, len, ctx.caller)
      return check({ ok: true }, await storeOutcome(() => h.store.truncate(len)))
    }
    case 'fstat': {
      ctx.log(`  h${hi} fstat`)
      const st = await h.store.stat()
      const got = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink }
      const want = { mode: h.model.perm, uid: h.model.uid, gid: h.model.gid, size: h.model.data.length, nlink: h.model.nlink }
      if (JSON.stringify(got) !== JSON.stringify(want)) return `fstat: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`
      return ctx.inos.check(h.model.id, st.ino)
    }
    case 'unlink': {
      ctx.log(`  unlink ${firstPath}`)
      return check(model.unlink(firstPath), await storeOutcome(() => fs.unlink(firstPath)))
    }
    case 'replace': {
      // a new file takes the name while the old one is still open
      const data = gen.data(rng.range(0, 5000))
      const tmp = `${firstPath}.new`
      ctx.log(`  writeFile ${tmp} ${bytesLabel(data)}; rename ${tmp} -> ${firstPath}`)
      const p = check(model.writeFile(tmp, data, 0o644, 'w'), await storeOutcome(() => fs.writeFile(tmp, data, { mode: 0o644 })))
      if (p) return p
      return check(model.rename(tmp, firstPath, 0), await storeOutcome(() => fs.rename(tmp, firstPath)))
    }
  }
}
