import { fsError } from '../errors.js'
import type { InodeRecord } from '../store/records.js'
import { ROOT_INO } from '../store/records.js'
import { T, isDirType, joinPath, type LowerNode, type LowerTree, type OvlNode, type UpperLayer } from './node.js'
import { followRedirectPath, followsRedirects, type RedirectConfig } from './redirect.js'
import { isOpaqueDir, isWhiteoutEntry } from './whiteout.js'

/**
 * Lookup through the layers, in one place: an upper layer (optional) over a merged lower tree.
 * The rules are the kernel's (fs/overlayfs/namei.c): an upper non-dir hides everything below; an
 * upper dir merges with the lower dir of the same name unless opaque, or with the lower dir its
 * redirect names; a whiteout hides the name; a lower dir under an upper non-dir is not merged.
 */
export interface NameiContext {
  upper: UpperLayer | null
  lower: LowerTree
  redirect: RedirectConfig
}

export function rootNode(ctx: NameiContext): OvlNode {
  return { name: '', path: '/', parent: null, ino: ROOT_INO, type: T.DIR, upper: ctx.upper !== null, lower: ctx.lower.root, lowerPath: '/', opaque: false }
}

/** Result of looking up one name: the node, or why there is none. */
export interface LookupResult {
  node?: OvlNode
  /** The upper layer holds a whiteout for the name (creating over it makes an opaque dir). */
  whiteout: boolean
}

export async function lookupChild(ctx: NameiContext, parent: OvlNode, name: string): Promise<LookupResult> {
  const path = joinPath(parent.path, name)
  const upperEntry = parent.upper && ctx.upper ? await ctx.upper.entry(parent.ino, name) : undefined
  if (upperEntry && isWhiteoutEntry(upperEntry)) return { whiteout: true }
  const lowerOf = async (): Promise<LowerNode | undefined> =>
    parent.lower && !parent.opaque ? ctx.lower.lookup(parent.lower, name) : undefined

  if (!upperEntry) {
    const lower = await lowerOf()
    if (!lower) return { whiteout: false }
    const node: OvlNode = { name, path, parent, ino: lower.ino, type: lower.type, upper: false, lower, opaque: false }
    if (isDirType(lower.type)) node.lowerPath = parent.lowerPath === undefined ? undefined : joinPath(parent.lowerPath, name)
    return { node, whiteout: false }
  }

  const [ino, type] = upperEntry
  const node: OvlNode = { name, path, parent, ino, type, upper: true, opaque: false }
  if (!isDirType(type)) return { node, whiteout: false }
  const rec = await ctx.upper!.inode(ino)
  if (!rec) throw fsError('EIO', 'lookup', path, `upper layer ${ctx.upper!.id} has an entry but no inode ${ino}`)
  if (isOpaqueDir(rec)) {
    node.opaque = true
    return { node, whiteout: false }
  }
  if (rec.redirect !== undefined && !followsRedirects(ctx.redirect) && (rec.redirect.startsWith('/') || (parent.lower && !parent.opaque))) {
    // As the kernel: a redirect that may not be followed fails the lookup rather than merging the
    // dir with whatever lower dir happens to have its new name.
    throw fsError('EPERM', 'lookup', path, `refusing to follow redirect '${rec.redirect}' (redirect_dir=${ctx.redirect.policy})`)
  }
  const found = rec.redirect !== undefined && followsRedirects(ctx.redirect)
    ? await followRedirect(ctx, parent, rec.redirect, path)
    : { lower: await lowerOf(), lowerPath: parent.lowerPath === undefined ? undefined : joinPath(parent.lowerPath, name) }
  if (found.lower && isDirType(found.lower.type)) {
    node.lower = found.lower
    node.lowerPath = found.lowerPath
  }
  return { node, whiteout: false }
}

async function followRedirect(ctx: NameiContext, parent: OvlNode, value: string, where: string): Promise<{ lower?: LowerNode; lowerPath?: string }> {
  return followRedirectPath(ctx.lower, parent, value, where)
}

/** Walks absolute path components in the lower tree, from its root (never above it). */
export async function lowerPathLookup(lower: LowerTree, components: string[]): Promise<LowerNode | undefined> {
  let cur: LowerNode | undefined = lower.root
  for (const c of components) {
    if (!cur || !isDirType(cur.type)) return undefined
    cur = await lower.lookup(cur, c)
  }
  return cur
}

/** The inode record that the merged node shows. */
export async function nodeInode(ctx: NameiContext, node: OvlNode): Promise<InodeRecord> {
  if (node.upper && ctx.upper) {
    const rec = await ctx.upper.inode(node.ino)
    if (!rec) throw fsError('EIO', 'stat', node.path, `upper layer ${ctx.upper.id} has no inode ${node.ino}`)
    return rec
  }
  if (!node.lower) throw fsError('EIO', 'stat', node.path, 'merged node has neither upper nor lower object')
  const rec = await ctx.lower.inode(node.lower)
  // A hard link whose inode was copied up through another name shows the upper inode.
  if (ctx.upper && !isDirType(node.type) && rec.nlink > 1) {
    const up = await ctx.upper.inode(node.ino)
    if (up) return up
  }
  return rec
}

/** True when the lower tree has an object at this node's name: removing it needs a whiteout. */
export async function lowerPositive(ctx: NameiContext, node: OvlNode): Promise<boolean> {
  const parent = node.parent
  if (!parent || !parent.lower || parent.opaque) return false
  return (await ctx.lower.lookup(parent.lower, node.name)) !== undefined
}
