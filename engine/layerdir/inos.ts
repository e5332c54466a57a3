/**
 * Inode numbers for objects of directory layers. Host inode numbers cannot serve: layers on
 * different filesystems may repeat them, and store inodes share the merged view. Numbers given
 * here start far above any store's counter, and last as long as the process.
 */
let next = 2 ** 48

export const allocDirLayerIno = (): number => next++
