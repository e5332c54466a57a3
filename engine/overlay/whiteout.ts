import type { InodeRecord } from '../store/records.js'

/**
 * Whiteout and opaque tests, in one place, for both forms a layer can take.
 *
 * Store layers: a whiteout is an entry record of [0, 0]; opacity is a flag of the directory inode.
 *
 * Directories in the kernel's on-disk format: a whiteout is a char device 0/0, or a zero-size
 * regular file carrying the `overlay.whiteout` xattr (an "xwhiteout"; the kernel looks for those
 * only in a dir marked `overlay.opaque=x`). A dir is opaque when `overlay.opaque` is `y`; `x` marks
 * a merge dir that holds xwhiteouts and is not opaque. The xattrs carry the `trusted.` prefix, or
 * `user.` with the `userxattr` option.
 */
export const isWhiteoutEntry = (e: readonly [number, number]): boolean => e[0] === 0

export const isOpaqueDir = (rec: InodeRecord | undefined): boolean => rec?.opaque === true

/** The overlay's own xattr names in a layer directory. */
export interface OverlayXattrNames {
  prefix: string
  opaque: string
  redirect: string
  whiteout: string
  origin: string
  metacopy: string
}

export function overlayXattrNames(userxattr = false): OverlayXattrNames {
  const prefix = userxattr ? 'user.overlay.' : 'trusted.overlay.'
  return {
    prefix,
    opaque: `${prefix}opaque`,
    redirect: `${prefix}redirect`,
    whiteout: `${prefix}whiteout`,
    origin: `${prefix}origin`,
    metacopy: `${prefix}metacopy`,
  }
}

const S_IFMT = 0o170000
const S_IFCHR = 0o020000
const S_IFREG = 0o100000

/** A char device 0/0: the whiteout the kernel creates. */
export const isWhiteoutDevice = (mode: number, rdev: number): boolean => (mode & S_IFMT) === S_IFCHR && rdev === 0

/** A zero-size regular file with the whiteout xattr, inside a dir marked as holding such files. */
export function isXattrWhiteout(mode: number, size: number, hasWhiteoutXattr: boolean, parentHoldsXwhiteouts: boolean): boolean {
  return parentHoldsXwhiteouts && (mode & S_IFMT) === S_IFREG && size === 0 && hasWhiteoutXattr
}

/** What a dir's `overlay.opaque` value says: opaque ('y'), holding xwhiteouts ('x'), or neither. */
export function parseOpaqueXattr(value: Buffer | undefined): { opaque: boolean; xwhiteouts: boolean } {
  const v = value?.toString('latin1')
  return { opaque: v === 'y', xwhiteouts: v === 'x' }
}

/** The value written to make a dir opaque. */
export const OPAQUE_VALUE = Buffer.from('y')
