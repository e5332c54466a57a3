/**
 * Lower layers as plain data, and how the kernel's lookup merges them. The generator uses the
 * lookup to put whiteouts only where the kernel treats them the same in lookup and readdir.
 */

export type Content = { kind: 'random'; size: number; seed: number } | { kind: 'big'; size: number }

export interface Attrs {
  mode: number
  uid: number
  gid: number
  /** user.* xattrs: name -> value. */
  xattrs: Record<string, string>
}

export type LayerNode =
  | ({ t: 'dir'; opaque?: 'y' | 'x' } & Attrs)
  /** whiteoutXattr: carries trusted.overlay.whiteout where the kernel does not honour it. */
  | ({ t: 'file'; content: Content; whiteoutXattr?: true } & Attrs)
  /** A hard link to the file at `of` in the same layer. */
  | { t: 'link'; of: string }
  | { t: 'symlink'; target: string; uid: number; gid: number }
  /** `chr`: the char device 0/0; `xattr`: an empty file with trusted.overlay.whiteout, in a dir with opaque=x. */
  | { t: 'whiteout'; form: 'chr' | 'xattr' }

/** Path -> node, the layer's root dir '/' included. */
export type Layer = Map<string, LayerNode>

export type Found =
  | { kind: 'none' }
  | { kind: 'dir'; layers: number[] }
  | { kind: 'nondir'; layer: number }

export const components = (path: string): string[] => path.split('/').filter((c) => c !== '')

/**
 * What the kernel's lookup finds at `path` in `layers` (top first): a dir with the layers taking
 * part in it, one non-dir, or nothing. A whiteout ends the search; so does a non-dir below a dir,
 * and an opaque dir after taking part.
 */
export function lookup(layers: Layer[], path: string): Found {
  let part = layers.map((_, i) => i)
  const names = components(path)
  let cur = ''
  for (let k = 0; k < names.length; k++) {
    cur += `/${names[k]}`
    const next: number[] = []
    for (const i of part) {
      const n = layers[i].get(cur)
      if (!n) continue
      if (n.t === 'whiteout') break
      if (n.t !== 'dir') {
        if (next.length > 0) break
        return k === names.length - 1 ? { kind: 'nondir', layer: i } : { kind: 'none' }
      }
      next.push(i)
      if (n.opaque === 'y') break
    }
    if (next.length === 0) return { kind: 'none' }
    part = next
  }
  return { kind: 'dir', layers: part }
}

/** The names the merged dir at `path` shows (whiteouts removed). */
export function mergedNames(layers: Layer[], path: string): string[] {
  const found = lookup(layers, path)
  if (found.kind !== 'dir') return []
  const prefix = path === '/' ? '/' : `${path}/`
  const names = new Set<string>()
  for (const i of found.layers) {
    for (const p of layers[i].keys()) {
      if (p === path || !p.startsWith(prefix) || p.slice(prefix.length).includes('/')) continue
      names.add(p.slice(prefix.length))
    }
  }
  return [...names].filter((n) => lookup(layers, prefix + n).kind !== 'none').sort()
}

/** One line per entry, for a failure report. */
export function describeLayers(layers: Layer[], firstIndex = 0): string {
  const lines: string[] = []
  layers.forEach((layer, i) => {
    lines.push(`  lower ${i + firstIndex}${i + firstIndex === 0 ? ' (top)' : ''}${i === layers.length - 1 ? ' (bottom)' : ''}:`)
    for (const [p, n] of layer) {
      const attrs = 'mode' in n ? ` ${n.mode.toString(8)} ${n.uid}:${n.gid}${Object.keys(n.xattrs).length ? ` xattrs=${Object.keys(n.xattrs).join(',')}` : ''}` : ''
      const what =
        n.t === 'dir' ? `dir${n.opaque ? ` opaque=${n.opaque}` : ''}` :
        n.t === 'file' ? `file ${n.content.size}B${n.whiteoutXattr ? ' with trusted.overlay.whiteout' : ''}` :
        n.t === 'link' ? `hard link of ${n.of}` :
        n.t === 'symlink' ? `symlink -> ${n.target}` : `whiteout (${n.form})`
      lines.push(`    ${p} ${what}${attrs}`)
    }
  })
  return lines.join('\n')
}
