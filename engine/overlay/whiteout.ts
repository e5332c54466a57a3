import type { InodeRecord } from '../store/records.js'

/**
 * Whiteout and opaque tests for store layers, in one place. A whiteout is an entry record of
 * [0, 0]; opacity is a flag of the directory inode.
 */
export const isWhiteoutEntry = (e: readonly [number, number]): boolean => e[0] === 0

export const isOpaqueDir = (rec: InodeRecord | undefined): boolean => rec?.opaque === true
