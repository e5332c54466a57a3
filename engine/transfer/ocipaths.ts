import { fsError } from '../errors.js'
import { NAME_MAX, PATH_MAX } from '../overlay/overlay.js'

/**
 * Member names of an OCI layer tar, in one place: what a name means inside the layer root, and
 * which names are whiteouts. A layer comes from outside, so a name may only ever reach inside the
 * root: absolute names and `..` components are refused rather than rewritten, as an image
 * builder never writes them and a hostile tar would.
 */

export const WHITEOUT_PREFIX = '.wh.'
/** In dir D: the lower part of D is hidden (D becomes opaque). */
export const OPAQUE_MARKER = '.wh..wh..opq'
/** aufs kept its own metadata under such names ('.wh..wh.plnk'): nothing of the layer's tree. */
const AUFS_META_PREFIX = '.wh..wh.'

/** What one member of a layer tar does to the tree. */
export type Member =
  | { kind: 'object'; path: string[] }
  | { kind: 'whiteout'; path: string[] }
  | { kind: 'opaque'; dir: string[] }
  | { kind: 'skip' }

/**
 * The components of a member name (or a hard link's target) under the layer root; [] is the
 * root. `name` is also what the error names: the path as the tar has it.
 */
export function layerPath(raw: string, name: string, syscall: string, what = 'path'): string[] {
  if (raw === '' || raw === '.' || raw === './') {
    if (what === 'path') return []
    throw fsError('EINVAL', syscall, name, `${what} is empty`)
  }
  if (raw.includes('\0')) throw fsError('EINVAL', syscall, name, `${what} contains a NUL byte`)
  if (raw.startsWith('/')) throw fsError('EINVAL', syscall, name, `${what} '${raw}' is absolute: layer paths must stay inside the root`)
  const parts = raw.split('/').filter((c) => c !== '' && c !== '.')
  if (parts.includes('..')) throw fsError('EINVAL', syscall, name, `${what} '${raw}' has a '..' component: layer paths must stay inside the root`)
  if (Buffer.byteLength(raw) >= PATH_MAX) throw fsError('ENAMETOOLONG', syscall, name)
  parts.forEach((part, i) => {
    // a whiteout's name is its prefix and a name that may itself be NAME_MAX long
    const max = what === 'path' && i === parts.length - 1 && part.startsWith(WHITEOUT_PREFIX) ? NAME_MAX + WHITEOUT_PREFIX.length : NAME_MAX
    if (Buffer.byteLength(part) > max) throw fsError('ENAMETOOLONG', syscall, name, `'${part.slice(0, 32)}…' is longer than ${NAME_MAX} bytes`)
  })
  return parts
}

/** A name an OCI layer cannot carry as an object: every reader takes it for a whiteout. */
export const isWhiteoutName = (name: string): boolean => name.startsWith(WHITEOUT_PREFIX)

/** Classifies a member by its name: an object, a whiteout, an opaque marker, or aufs metadata. */
export function memberOf(path: string[], name: string, syscall: string): Member {
  for (const dir of path.slice(0, -1)) {
    if (dir.startsWith(AUFS_META_PREFIX)) return { kind: 'skip' }
    if (dir.startsWith(WHITEOUT_PREFIX)) throw fsError('EINVAL', syscall, name, `'${dir}' names a whiteout, which cannot hold other entries`)
  }
  const last = path.at(-1)
  if (last === undefined || !last.startsWith(WHITEOUT_PREFIX)) return { kind: 'object', path }
  if (last === OPAQUE_MARKER) return { kind: 'opaque', dir: path.slice(0, -1) }
  if (last.startsWith(AUFS_META_PREFIX)) return { kind: 'skip' }
  const hidden = last.slice(WHITEOUT_PREFIX.length)
  if (hidden === '' || hidden === '.' || hidden === '..') throw fsError('EINVAL', syscall, name, `whiteout '${last}' names no entry`)
  return { kind: 'whiteout', path: [...path.slice(0, -1), hidden] }
}

/** A path of the store ('/a/b') from layer components. */
export const storePath = (path: readonly string[]): string => `/${path.join('/')}`

/** A member name for the tar ('a/b', dirs 'a/b/', the root './'). */
export function memberName(path: string, dir: boolean): string {
  const rel = path.replace(/^\/+/, '')
  if (rel === '') return './'
  return dir ? `${rel}/` : rel
}

/** The member name of the whiteout that hides `path` ('/a/b' -> 'a/.wh.b'). */
export function whiteoutName(path: string): string {
  const cut = path.lastIndexOf('/')
  return memberName(`${path.slice(0, cut)}/${WHITEOUT_PREFIX}${path.slice(cut + 1)}`, false)
}

/** The member name of the opaque marker of dir `path`. */
export const opaqueName = (path: string): string => memberName(path === '/' ? `/${OPAQUE_MARKER}` : `${path}/${OPAQUE_MARKER}`, false)
