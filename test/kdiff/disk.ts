import { chmod, chown, lchown, link, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setAttribute } from 'fs-xattr'
import { patternBytes } from '../helpers.js'
import { mknodWhiteout } from './mounts.js'
import type { Attrs, Content, Layer } from './stack.js'

/** Writes generated layers as plain dirs in the kernel's overlay format. */

/**
 * The big file's bytes: 16-byte records each holding its own offset in hex, so a misplaced or
 * lost write in the middle shows where it went wrong.
 */
export function bigPattern(size: number): Buffer {
  const rec = Buffer.alloc(Math.ceil(size / 16) * 16)
  for (let off = 0; off < rec.length; off += 16) rec.write(`${off.toString(16).padStart(15, '0')}\n`, off, 'latin1')
  return rec.subarray(0, size)
}

export const contentBytes = (c: Content): Buffer => (c.kind === 'big' ? bigPattern(c.size) : patternBytes(c.size, c.seed))

async function setAttrs(path: string, a: Attrs): Promise<void> {
  // chown before chmod: chown clears setuid and setgid bits
  await chown(path, a.uid, a.gid)
  await chmod(path, a.mode)
  for (const [n, v] of Object.entries(a.xattrs)) await setAttribute(path, n, v)
}

/** One layer into the existing empty dir `root`: parents first, hard links last. */
export async function writeLayer(root: string, layer: Layer): Promise<void> {
  const depth = (p: string): number => (layer.get(p)!.t === 'link' ? 100 : 0) + p.split('/').length
  const paths = [...layer.keys()].sort((x, y) => depth(x) - depth(y) || (x < y ? -1 : 1))
  for (const p of paths) {
    const n = layer.get(p)!
    const host = p === '/' ? root : join(root, p)
    switch (n.t) {
      case 'dir':
        if (p !== '/') await mkdir(host)
        await setAttrs(host, n)
        if (n.opaque) await setAttribute(host, 'trusted.overlay.opaque', n.opaque)
        break
      case 'file':
        await writeFile(host, contentBytes(n.content))
        await setAttrs(host, n)
        if (n.whiteoutXattr) await setAttribute(host, 'trusted.overlay.whiteout', '')
        break
      case 'link':
        await link(join(root, n.of), host)
        break
      case 'symlink':
        await symlink(n.target, host)
        await lchown(host, n.uid, n.gid)
        break
      case 'whiteout':
        if (n.form === 'chr') await mknodWhiteout(host)
        else {
          await writeFile(host, '')
          await setAttribute(host, 'trusted.overlay.whiteout', '')
        }
        break
    }
  }
}

/** Every layer under `base` as lower-0 (top) .. lower-N; returns their paths, top first. */
export async function writeLayers(base: string, layers: Layer[]): Promise<string[]> {
  const dirs: string[] = []
  for (let i = 0; i < layers.length; i++) {
    const d = join(base, `lower-${i}`)
    await mkdir(d, { recursive: true })
    await writeLayer(d, layers[i])
    dirs.push(d)
  }
  return dirs
}
