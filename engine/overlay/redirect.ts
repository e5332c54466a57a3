import type { OverlayOptions, RedirectPolicy } from '../types.js'
import { fsError } from '../errors.js'
import type { LowerNode, LowerTree } from './node.js'
import { isDirType, joinPath } from './node.js'

/** The longest name a lower layer can hold (the host's NAME_MAX). */
const NAME_MAX = 255

/** The kernel's default `redirect_max`. */
export const DEFAULT_REDIRECT_MAX = 256

export interface RedirectConfig {
  policy: RedirectPolicy
  max: number
  /** As the kernel module's redirect_always_follow: makes 'off' follow (but not create) redirects. */
  alwaysFollow: boolean
}

/** `where` names what the options are for (a snapshot key), for the error message. */
export function redirectConfig(opts: OverlayOptions = {}, where?: string): RedirectConfig {
  const policy = opts.redirectDir ?? 'on'
  if (!['on', 'follow', 'nofollow', 'off'].includes(policy)) throw fsError('EINVAL', 'mount', where, `redirect_dir must be on, follow, nofollow or off, not '${policy}'`)
  const max = opts.redirectMax ?? DEFAULT_REDIRECT_MAX
  if (!Number.isInteger(max) || max < 1) throw fsError('EINVAL', 'mount', where, `redirect_max must be a positive integer, not '${max}'`)
  return { policy, max, alwaysFollow: opts.redirectAlwaysFollow ?? false }
}

/** Redirects are created only with 'on' (a rename of a lower or merged dir gives EXDEV otherwise). */
export const createsRedirects = (c: RedirectConfig): boolean => c.policy === 'on'

/**
 * Redirects are followed with 'on' and 'follow'; never with 'nofollow'; with 'off' only under
 * alwaysFollow. A redirect from an untrusted layer could otherwise expose directories that the
 * layer's author could not read (the reason 'off' stopped following them).
 */
export const followsRedirects = (c: RedirectConfig): boolean =>
  c.policy === 'on' || c.policy === 'follow' || (c.policy === 'off' && c.alwaysFollow)

export type ParsedRedirect = { absolute: true; components: string[] } | { absolute: false; name: string }

/**
 * Validates a stored redirect. Absolute ones are '/'-separated names from the stack's root; a
 * relative one is a single name in the same parent. Empty, '.' and '..' components are refused,
 * so a redirect can only name something inside the stack.
 */
export function parseRedirect(value: string, c: RedirectConfig, where: string): ParsedRedirect {
  // EINVAL, as the kernel answers a lookup through an invalid redirect xattr
  const bad = (why: string): never => { throw fsError('EINVAL', 'lookup', where, `invalid redirect '${value}': ${why}`) }
  if (Buffer.byteLength(value) > Math.max(c.max, 4096)) bad('too long')
  const ok = (name: string): boolean => name !== '' && name !== '.' && name !== '..' && !name.includes('\0')
  if (value.startsWith('/')) {
    const components = value.slice(1).split('/')
    if (value === '/' || !components.every(ok)) bad('empty, "." or ".." component')
    return { absolute: true, components }
  }
  if (value.includes('/') || !ok(value)) bad('a relative redirect must be one name')
  return { absolute: false, name: value }
}

/**
 * The redirect to record when a dir whose lower part sits at `lowerPath` moves. Within the same
 * lower parent the old name suffices, as the kernel does; otherwise the absolute lower path.
 * Undefined when the path is over redirect_max (the caller answers EXDEV, as the kernel does).
 */
export function makeRedirect(lowerPath: string, newParentLowerPath: string | undefined, c: RedirectConfig): string | undefined {
  const cut = lowerPath.lastIndexOf('/')
  const lowerParent = cut <= 0 ? '/' : lowerPath.slice(0, cut)
  const value = newParentLowerPath === lowerParent ? lowerPath.slice(cut + 1) : lowerPath
  return Buffer.byteLength(value) > c.max ? undefined : value
}

/**
 * The lower dir a redirect met in a lookup leads to, as the kernel's overlayfs (Linux 6.x) finds
 * it, checked against it name by name (test/redirect-kernel.test.ts):
 * - the value is read as a C string, up to its first NUL;
 * - an empty value, an empty component ('/', '//', a trailing '/') or a '/' in a relative
 *   redirect fails with EINVAL before anything is looked up;
 * - the components are then looked up in turn, and the walk stops (no lower dir, no error) at the
 *   first that is missing, is not a directory, or is longer than NAME_MAX (the layer answers
 *   ENAMETOOLONG, which overlayfs takes as a miss);
 * - a '.', '..' or empty name reached in the walk fails with EACCES, as the kernel's
 *   lookup_one refuses such names;
 * - the length of the whole value is not limited (redirect_max bounds only the redirects made).
 * Store contents are held to the stricter parseRedirect when they are imported or committed.
 */
export async function followRedirectPath(lower: LowerTree, parent: { lower?: LowerNode; lowerPath?: string }, raw: string, where: string): Promise<{ lower?: LowerNode; lowerPath?: string }> {
  const nul = raw.indexOf('\0')
  const value = nul < 0 ? raw : raw.slice(0, nul)
  const invalid = (why: string): never => { throw fsError('EINVAL', 'lookup', where, `invalid redirect '${value}': ${why}`) }
  if (raw === '') invalid('empty')
  const absolute = value.startsWith('/')
  const components = absolute ? value.slice(1).split('/') : [value]
  if (absolute && components.includes('')) invalid('empty component')
  if (!absolute && value.includes('/')) invalid('a relative redirect must be one name')
  const lowerPath = absolute ? value : parent.lowerPath === undefined ? undefined : joinPath(parent.lowerPath, value)
  let cur: LowerNode | undefined = absolute ? lower.root : parent.lower
  for (const name of components) {
    if (!cur || !isDirType(cur.type)) return { lowerPath }
    if (name === '' || name === '.' || name === '..') throw fsError('EACCES', 'lookup', where, `redirect '${value}' names '${name}'`)
    if (Buffer.byteLength(name) > NAME_MAX) return { lowerPath }
    cur = await lower.lookup(cur, name)
  }
  return { lower: cur, lowerPath }
}
