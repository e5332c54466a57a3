import type { OvlNode } from './node.js'
import type { NameiContext } from './namei.js'
import type { Overlay } from './overlay.js'
import { isWhiteoutEntry } from './whiteout.js'

export interface MergedEntry {
  name: string
  ino: number
  type: number
}

/**
 * The names of a merged directory: the upper dir's first, then the lower dir's that the upper
 * neither has nor whites out; nothing from below an opaque dir. Callers keep the result for the
 * life of an open directory handle, as the kernel caches it in the open file.
 */
export async function readMergedDir(ov: Overlay, dir: OvlNode): Promise<MergedEntry[]> {
  return mergeDir(ov.ctx, dir)
}

/** The same merge over any upper layer and lower tree (a stack of layers merges layer by layer). */
export async function mergeDir(ctx: NameiContext, dir: OvlNode): Promise<MergedEntry[]> {
  const out: MergedEntry[] = []
  const seen = new Set<string>()
  if (dir.upper && ctx.upper) {
    for (const [name, e] of await ctx.upper.entries(dir.ino)) {
      seen.add(name)
      if (!isWhiteoutEntry(e)) out.push({ name, ino: e[0], type: e[1] })
    }
  }
  if (dir.lower && !dir.opaque) {
    for (const [name, n] of await ctx.lower.list(dir.lower)) {
      if (!seen.has(name)) out.push({ name, ino: n.ino, type: n.type })
    }
  }
  return out
}

export async function isEmptyDir(ov: Overlay, dir: OvlNode): Promise<boolean> {
  return (await readMergedDir(ov, dir)).length === 0
}
