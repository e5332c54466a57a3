/**
 * Layers between the store and directories in the Linux kernel overlayfs's on-disk format:
 * `importOverlayDir` takes a layer dir (an upper dir, a Docker overlay2 `diff` dir) as one new
 * committed layer; `exportOverlayDirs` writes a snapshot's stack as one dir per layer, ready for
 * `mount -t overlay overlay -o lowerdir=…`.
 */
export { importOverlayDir, type OverlayImportOptions } from './overlayimport.js'
export { exportOverlayDirs, type OverlayExportOptions, type OverlayExportResult } from './overlayexport.js'
