import { createReadStream, createWriteStream } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import { Readable, pipeline as pipelineCb } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { isUtf8 } from 'node:buffer'
import { extract as tarExtract, pack as tarPack, type Header, type Pack } from 'tar-stream'
import { FsError, StoreError, fsError } from '../errors.js'
import { fromNs } from '../overlay/stats.js'
import type { Timespec } from '../store/records.js'
import { makeDev, splitDev } from '../host/nodes.js'
import { hostError } from '../host/io.js'
import { isKnownXattrNamespace } from '../overlay/inode.js'
import { isOverlayPrivateXattr } from '../overlay/whiteout.js'

/**
 * OCI layer tars as streams of members, in one place: reading a tar (gzip detected by its magic
 * bytes) member by member, writing one (gzip when the name says so) to a temporary file renamed
 * into place at the end, and what the headers carry beyond ustar, in PAX records:
 *
 *   - `mtime`, `atime`: nanosecond times ("1700000000.123456789"); written when the seconds of
 *     the ustar field do not say it all (a fraction, before 1970, after 2038) or atime != mtime.
 *   - `uid`, `gid`: ids over the ustar field's reach; `SCHILY.devmajor`/`SCHILY.devminor` likewise.
 *   - `SCHILY.xattr.<name>`: extended attributes, as GNU tar, Docker and containerd write them.
 *     tar-stream reads and writes PAX values as UTF-8 text, so a value that is not valid UTF-8
 *     travels as `LIBARCHIVE.xattr.<%-escaped name>` in base64 (libarchive's form, which bsdtar
 *     reads and writes). On reading, a LIBARCHIVE record wins; a SCHILY value that did not decode
 *     as UTF-8 cannot be known exactly and is refused rather than stored wrong.
 */

export type EntryType = 'file' | 'dir' | 'symlink' | 'link' | 'chr' | 'blk' | 'fifo'

/** One member's header, checked and in the store's terms. */
export interface LayerEntry {
  /** The member name as the tar has it (for messages). */
  name: string
  type: EntryType
  /** Permission bits (07777). */
  mode: number
  uid: number
  gid: number
  mtime: Timespec
  atime: Timespec
  /** Bytes of data (regular files). */
  size: number
  /** Symlink target, or the member a hard link names. */
  linkname: string
  rdev: number
  xattrs?: Record<string, Buffer>
}

const TYPES: Partial<Record<string, EntryType>> = {
  file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink', link: 'link',
  'character-device': 'chr', 'block-device': 'blk', fifo: 'fifo',
}

const MAX_ID = 2 ** 32 - 1
const XATTR_NAME_MAX = 255
const XATTR_VALUE_MAX = 65536
const SYMLINK_MAX = 4096
const SCHILY_XATTR = 'SCHILY.xattr.'
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.'

/** The checked header of a member; refuses what the store could not hold exactly. */
export function entryOf(header: Header, syscall: string): LayerEntry {
  const name = header.name
  const bad = (detail: string, code: 'EINVAL' | 'ENOTSUP' | 'ENAMETOOLONG' | 'ERANGE' | 'EPERM' = 'EINVAL'): never => { throw fsError(code, syscall, name, detail) }
  const type = TYPES[String(header.type)]
  if (!type) throw fsError('ENOTSUP', syscall, name, `member type '${String(header.type)}' is not supported in a layer`)
  const pax = paxRecords(header)
  if (Object.keys(pax).some((k) => k.startsWith('GNU.sparse.'))) bad('GNU sparse members are not supported; write the layer without --sparse', 'ENOTSUP')
  const id = (key: 'uid' | 'gid'): number => {
    const v = pax[key] !== undefined ? Number(pax[key]) : header[key]
    if (!Number.isInteger(v) || v < 0 || v > MAX_ID) bad(`${key} '${pax[key] ?? header[key]}' is not a 32-bit id`)
    return v
  }
  const mtime = pax.mtime !== undefined ? paxTime(pax.mtime, name, syscall) : headerTime(header.mtime, name, syscall)
  const atime = pax.atime !== undefined ? paxTime(pax.atime, name, syscall) : mtime
  const linkname = header.linkname ?? ''
  if (type === 'symlink' || type === 'link') {
    if (linkname === '' || linkname.includes('\0')) bad(`${type === 'link' ? 'hard link' : 'symlink'} has an empty or invalid target`)
    if (type === 'symlink' && Buffer.byteLength(linkname) >= SYMLINK_MAX) bad('symlink target too long', 'ENAMETOOLONG')
  }
  let rdev = 0
  if (type === 'chr' || type === 'blk') {
    const major = pax['SCHILY.devmajor'] !== undefined ? Number(pax['SCHILY.devmajor']) : header.devmajor
    const minor = pax['SCHILY.devminor'] !== undefined ? Number(pax['SCHILY.devminor']) : header.devminor
    if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0 || major > MAX_ID || minor > MAX_ID) bad('invalid device number')
    rdev = makeDev(major, minor)
  }
  const entry: LayerEntry = {
    name, type, mode: header.mode & 0o7777, uid: id('uid'), gid: id('gid'), mtime, atime,
    size: type === 'file' ? header.size : 0, linkname, rdev,
  }
  const xattrs = xattrsOf(pax, type, bad)
  if (xattrs) entry.xattrs = xattrs
  return entry
}

const paxRecords = (header: Header): Record<string, string> => (header.pax ?? {}) as Record<string, string>

function xattrsOf(pax: Record<string, string>, type: EntryType, bad: (detail: string, code?: 'EINVAL' | 'ENOTSUP' | 'ERANGE' | 'EPERM') => never): Record<string, Buffer> | undefined {
  const out: Record<string, Buffer> = {}
  const exact = new Set<string>()
  for (const [key, value] of Object.entries(pax)) {
    let name: string
    let bytes: Buffer
    if (key.startsWith(LIBARCHIVE_XATTR)) {
      name = unescapeName(key.slice(LIBARCHIVE_XATTR.length))
      bytes = Buffer.from(value, 'base64')
      exact.add(name)
    } else if (key.startsWith(SCHILY_XATTR)) {
      name = key.slice(SCHILY_XATTR.length)
      if (exact.has(name)) continue
      // tar-stream decodes PAX values as UTF-8: U+FFFD stands for bytes that were not UTF-8
      if (value.includes('\uFFFD') && !(`${LIBARCHIVE_XATTR}${escapeName(name)}` in pax)) {
        bad(`xattr '${name}' has a binary value in a SCHILY.xattr record, which cannot be read exactly; write the layer with bsdtar (it adds LIBARCHIVE.xattr records)`, 'ENOTSUP')
      }
      bytes = Buffer.from(value, 'utf8')
    } else {
      continue
    }
    if (isOverlayPrivateXattr(name)) continue
    if (!isKnownXattrNamespace(name)) bad(`xattr '${name}' is in no known namespace`, 'ENOTSUP')
    if (Buffer.byteLength(name) > XATTR_NAME_MAX || bytes.length > XATTR_VALUE_MAX) bad(`xattr '${name}' is too long`, 'ERANGE')
    // as the kernel: user.* only on regular files and dirs
    if (name.startsWith('user.') && type !== 'file' && type !== 'dir') bad(`xattr '${name}': user.* xattrs are only allowed on regular files and dirs`, 'EPERM')
    out[name] = bytes
  }
  return Object.keys(out).length > 0 ? out : undefined
}

/** libarchive's escaping of xattr names in PAX keys: %XX for '%', '=' and bytes outside printable ASCII. */
function escapeName(name: string): string {
  let out = ''
  for (const b of Buffer.from(name, 'utf8')) out += b > 0x20 && b < 0x7f && b !== 0x25 && b !== 0x3d ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  return out
}

function unescapeName(escaped: string): string {
  const bytes: number[] = []
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === '%' && /^[0-9a-fA-F]{2}$/.test(escaped.slice(i + 1, i + 3))) {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(escaped[i], 'utf8'))
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

function paxTime(value: string, name: string, syscall: string): Timespec {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value)
  if (!m) throw fsError('EINVAL', syscall, name, `invalid PAX time '${value}'`)
  const ns = BigInt(m[2]) * 1000000000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'))
  return fromNs(m[1] === '-' ? -ns : ns)
}

function headerTime(date: Date, name: string, syscall: string): Timespec {
  const ms = date.getTime()
  if (!Number.isFinite(ms)) throw fsError('EINVAL', syscall, name, 'invalid modification time')
  return [Math.floor(ms / 1000), 0]
}

const formatPaxTime = (ns: bigint): string => {
  const abs = ns < 0n ? -ns : ns
  const frac = (abs % 1000000000n).toString().padStart(9, '0').replace(/0+$/, '')
  return `${ns < 0n ? '-' : ''}${abs / 1000000000n}${frac ? `.${frac}` : ''}`
}

// ---- writing ----

/** What a member says of an object of the store, for tarHeader. */
export interface TarObject {
  /** Member name (see ocipaths.memberName). */
  name: string
  type: EntryType
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
  atimeNs: bigint
  size?: number
  linkname?: string
  rdev?: number
  xattrs?: Record<string, Buffer>
}

const HEADER_TYPES: Record<EntryType, Header['type']> = {
  file: 'file', dir: 'directory', symlink: 'symlink', link: 'link', chr: 'character-device', blk: 'block-device', fifo: 'fifo',
}
/** tar-stream writes ids and device numbers in 6 octal digits; above, PAX records say them. */
const OCTAL6_MAX = 0o777777
const MTIME_FIELD_MAX = 2 ** 31 - 1

export function tarHeader(o: TarObject): Partial<Header> & { name: string } {
  const pax: Record<string, string> = {}
  const sec = o.mtimeNs / 1000000000n
  const wholeSeconds = o.mtimeNs % 1000000000n === 0n && o.mtimeNs >= 0n && sec <= BigInt(MTIME_FIELD_MAX)
  if (!wholeSeconds) pax.mtime = formatPaxTime(o.mtimeNs)
  if (o.atimeNs !== o.mtimeNs) pax.atime = formatPaxTime(o.atimeNs)
  if (o.uid > OCTAL6_MAX) pax.uid = String(o.uid)
  if (o.gid > OCTAL6_MAX) pax.gid = String(o.gid)
  let [devmajor, devminor] = [0, 0]
  if (o.type === 'chr' || o.type === 'blk') {
    const [major, minor] = splitDev(o.rdev ?? 0).map(Number)
    ;[devmajor, devminor] = [major, minor]
    if (major > OCTAL6_MAX || minor > OCTAL6_MAX) {
      pax['SCHILY.devmajor'] = String(major)
      pax['SCHILY.devminor'] = String(minor)
      ;[devmajor, devminor] = [0, 0]
    }
  }
  for (const [name, value] of Object.entries(o.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const plainName = !/[=%\s]/.test(name) && isUtf8(Buffer.from(name))
    if (plainName && isUtf8(value)) pax[`${SCHILY_XATTR}${name}`] = Buffer.from(value).toString('utf8')
    else pax[`${LIBARCHIVE_XATTR}${escapeName(name)}`] = Buffer.from(value).toString('base64')
  }
  const clampedSec = sec < 0n ? 0 : sec > BigInt(MTIME_FIELD_MAX) ? MTIME_FIELD_MAX : Number(sec)
  const header: Partial<Header> & { name: string } = {
    name: o.name,
    type: HEADER_TYPES[o.type],
    mode: o.mode & 0o7777,
    uid: o.uid > OCTAL6_MAX ? 0 : o.uid,
    gid: o.gid > OCTAL6_MAX ? 0 : o.gid,
    mtime: new Date(clampedSec * 1000),
    size: o.type === 'file' ? o.size ?? 0 : 0,
    devmajor,
    devminor,
  }
  if (o.linkname !== undefined) header.linkname = o.linkname
  if (Object.keys(pax).length > 0) header.pax = pax
  return header
}

const WRITE_BUFFER = 1024 * 1024

/**
 * A layer tar being written: to a temporary file next to `dest`, renamed over it by `finish`, so
 * a failure never leaves a partial tar under the requested name.
 */
export class LayerTarWriter {
  private failure: unknown
  private abandoned = false
  private constructor(private readonly pack: Pack, private readonly tmp: string, private readonly dest: string, private readonly done: Promise<void>) {
    done.catch((err: unknown) => { if (!this.abandoned) this.failure ??= err })
  }

  static create(dest: string, gzip: boolean): LayerTarWriter {
    // buffers of a MiB: headers are 512 bytes each, and the file takes what has gathered in one write
    const pack = tarPack({ highWaterMark: WRITE_BUFFER })
    const tmp = join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.tmp`)
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: WRITE_BUFFER })
    const zip = gzip ? createGzip() : undefined
    // the pack stream is a streamx stream: read through its async iterator
    const source = Readable.from(pack, { objectMode: false, highWaterMark: WRITE_BUFFER })
    const writer = new LayerTarWriter(pack, tmp, dest, zip ? pipeline(source, zip, out) : pipeline(source, out))
    // known at once, before the producer sees only that its stream closed
    for (const s of [out, zip]) s?.on('error', (err: unknown) => { if (!writer.abandoned) writer.failure ??= outputError(err, dest) })
    return writer
  }

  /** Adds a member; `data` (a regular file's bytes, `size` of them in all) is written as it comes. */
  async add(header: Partial<Header> & { name: string }, data?: AsyncIterable<Buffer>): Promise<void> {
    try {
      let sink!: ReturnType<Pack['entry']>
      const written = new Promise<void>((resolve, reject) => {
        sink = this.pack.entry(header, (err) => (err ? reject(err) : resolve()))
      })
      written.catch(() => {})
      // torn down with the output's error, the entry also emits it: the callback above reports it
      sink.on('error', () => {})
      if (data) for await (const chunk of data) if (!sink.write(chunk)) await drained(sink)
      sink.end(null)
      await written
    } catch (err) {
      throw this.failure ?? err
    }
  }

  async finish(): Promise<void> {
    this.pack.finalize()
    await this.done
    await rename(this.tmp, this.dest)
  }

  async abort(): Promise<void> {
    this.abandoned = true
    this.pack.destroy(new Error('export abandoned'))
    await this.done.catch(() => {})
    await rm(this.tmp, { force: true })
  }

  /** What made the output fail (a full disk...), when it has. */
  get error(): unknown {
    return this.failure
  }
}

interface StreamxWritable {
  readonly destroying: boolean
  once(ev: string, fn: (...args: unknown[]) => void): unknown
  off?(ev: string, fn: (...args: unknown[]) => void): unknown
}

/** An error of the output, naming the destination rather than the temporary file. */
function outputError(err: unknown, dest: string): unknown {
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown }
  if (typeof e?.code !== 'string') return err
  return hostError({ code: e.code, syscall: e.syscall, message: String(e.message).replaceAll(/'[^']*\.tmp'/g, `'${dest}'`) }, 'write', dest)
}

/** Resolves once a streamx writable wants more; rejects if it is closed (or closing) first. */
function drained(stream: StreamxWritable): Promise<void> {
  return new Promise((resolve, reject) => {
    // a stream torn down from the other end (the output failed) will never drain
    if (stream.destroying) return reject(new Error('tar stream closed'))
    const onDrain = (): void => { stream.off?.('close', onClose); resolve() }
    const onClose = (): void => { stream.off?.('drain', onDrain); reject(new Error('tar stream closed')) }
    stream.once('drain', onDrain)
    stream.once('close', onClose)
  })
}

// ---- reading ----

const GZIP_MAGIC = [0x1f, 0x8b]
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd]
const READ_CHUNK = 1024 * 1024

/** Called for each member with its body (which it may leave unread: the rest is skipped). */
export type MemberVisitor = (header: Header, body: AsyncIterable<Buffer>) => Promise<void>

/**
 * Reads the layer tar at `path` member by member, in order, with bounded memory. `onRead` learns
 * how many bytes of the file have been read. Errors of the file, the gzip data or the tar format
 * come out as FsErrors naming the file; errors of `visit` come out as they are.
 */
export async function readLayerTar(path: string, syscall: string, visit: MemberVisitor, onRead?: (bytes: number) => void): Promise<void> {
  const head = Buffer.alloc(4)
  const fh = await open(path, 'r').catch((err: unknown) => { throw hostError(err, syscall, path) })
  try {
    if ((await fh.stat()).isDirectory()) throw fsError('EISDIR', syscall, path, 'an OCI layer is a tar file, not a directory')
    await fh.read(head, 0, head.length, 0)
  } catch (err) {
    throw hostError(err, syscall, path)
  } finally {
    await fh.close()
  }
  if (ZSTD_MAGIC.every((b, i) => head[i] === b)) throw fsError('ENOTSUP', syscall, path, 'zstd-compressed layers are not supported; decompress it first')
  const gzip = GZIP_MAGIC.every((b, i) => head[i] === b)

  const input = createReadStream(path, { highWaterMark: READ_CHUNK })
  const source: Readable = gzip ? pipelineCb(input, createGunzip(), () => {}) : input
  const extract = tarExtract()
  const feeding = feed(source, extract)
  feeding.catch(() => {})
  try {
    for await (const member of extract) {
      const body = member as AsyncIterable<unknown> as AsyncIterable<Buffer>
      await visit(member.header, body)
      for await (const _ of body) { /* the part the visitor left */ }
      onRead?.(input.bytesRead)
    }
    await feeding
  } catch (err) {
    throw sourceError(err, path, syscall)
  } finally {
    extract.destroy()
    source.destroy()
    input.destroy()
  }
}

/** Writes the (decompressed) bytes into the tar parser, as fast as it takes them. */
async function feed(source: AsyncIterable<Buffer>, extract: ReturnType<typeof tarExtract>): Promise<void> {
  try {
    for await (const chunk of source) if (!extract.write(chunk)) await drained(extract)
    extract.end(null)
  } catch (err) {
    extract.destroy(err as Error)
    throw err
  }
}

function sourceError(err: unknown, path: string, syscall: string): unknown {
  if (err instanceof FsError || err instanceof StoreError) return err
  const code = (err as { code?: unknown })?.code
  const message = err instanceof Error ? err.message : String(err)
  if (typeof code === 'string' && code.startsWith('Z_')) return fsError('EINVAL', syscall, path, `corrupt gzip data: ${message}`)
  if (typeof code === 'string') return hostError(err, syscall, path)
  return fsError('EINVAL', syscall, path, `not a valid tar archive: ${message}`)
}
