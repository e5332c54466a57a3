import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'

/** A fresh directory under the scratch root; removed by the returned function. */
export async function scratchDir(root: string, prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  await mkdir(root, { recursive: true })
  const path = await mkdtemp(join(root, `${prefix}-`))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}

/** Bytes of the files under a directory (sizes, not blocks). */
export async function dirBytes(path: string): Promise<number> {
  let total = 0
  for (const e of await readdir(path, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size
  }
  return total
}
