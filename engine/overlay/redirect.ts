import type { OverlayOptions, RedirectPolicy } from '../types.js'
import { fsError } from '../errors.js'

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
