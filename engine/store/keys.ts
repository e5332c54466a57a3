/**
 * Every LevelDB key prefix the store uses, in one place. docs/format.md describes each record.
 * Keys are UTF-8 strings; numbers inside keys are lowercase hex so that a prefix names one range.
 */

export const FORMAT_KEY = 'F'
export const COUNTER_PREFIX = 'N/'
export const SNAPSHOT_PREFIX = 'S/'
export const LAYER_PREFIX = 'L/'
export const ENTRY_PREFIX = 'E/'
export const INODE_PREFIX = 'I/'
/** Chunk bodies kept in LevelDB itself (the small batches). */
export const CHUNK_PREFIX = 'C/'
/** Where a chunk kept in a pack file is (engine/store/packs.ts). */
export const PACKED_PREFIX = 'P/'
export const NODE_PREFIX = 'X/'

export const hex = (n: number): string => n.toString(16)

export const counterKey = (name: string): string => COUNTER_PREFIX + name
export const snapshotKey = (name: string): string => SNAPSHOT_PREFIX + name
export const layerKey = (layer: string): string => LAYER_PREFIX + layer

/** Directory entries of one layer are grouped by the directory's inode number. */
export const entryDirPrefix = (layer: string, dirIno: number): string => `${ENTRY_PREFIX}${layer}/${hex(dirIno)}/`
export const entryKey = (layer: string, dirIno: number, name: string): string => entryDirPrefix(layer, dirIno) + name
export const layerEntriesPrefix = (layer: string): string => `${ENTRY_PREFIX}${layer}/`

export const inodeKey = (layer: string, ino: number): string => `${INODE_PREFIX}${layer}/${hex(ino)}`
export const layerInodesPrefix = (layer: string): string => `${INODE_PREFIX}${layer}/`

export const chunkKey = (id: string): string => CHUNK_PREFIX + id
export const packedKey = (id: string): string => PACKED_PREFIX + id
export const nodeKey = (id: string): string => NODE_PREFIX + id

/**
 * Bounds of the range of keys that start with `prefix`. Every prefix here ends in '/', and no name
 * holds '/', so replacing that last '/' by '0' (the next code point) closes the range exactly.
 */
export function prefixRange(prefix: string): { gt: string; lt: string } {
  if (!prefix.endsWith('/')) return { gt: prefix, lt: prefix + '\u{10ffff}' }
  return { gt: prefix, lt: prefix.slice(0, -1) + '0' }
}
