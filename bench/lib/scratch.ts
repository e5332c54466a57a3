import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'

/** A fresh directory under the scratch root; removed by the returned function. */
export async function scratchDir(root: string, prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  await mkdir(root, { recursive: true })
  const path = await mkdtemp(join(root, `${prefix}-`))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}
