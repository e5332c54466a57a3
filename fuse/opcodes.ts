import { OP, type RequestHeader } from './kernel.js'
import type { FuseOps } from './ops.js'
import type { Reply } from './replies.js'
import {
  decodeAccess, decodeBatchForget, decodeCreate, decodeEmpty, decodeFlush, decodeForget, decodeFsync, decodeGetattr,
  decodeGetxattr, decodeInit, decodeInterrupt, decodeLink, decodeListxattr, decodeMkdir, decodeMknod, decodeName,
  decodeOpen, decodeRead, decodeRelease, decodeRename, decodeRename2, decodeSetattr, decodeSetxattr, decodeSymlink,
  decodeWrite,
  writeKeepsBody,
} from './requests.js'

/**
 * What Strata does with an opcode: its name (for traces), the decoder of its body, and its
 * handler. Decoding and handling stay apart, so every handler sees a typed request and the
 * decoders can be tested against the kernel's layouts on their own (test/fuse-requests.test.ts).
 *
 * `decode` and `handle` are declared as methods, whose parameters TypeScript checks both ways:
 * that lets one table hold handlers of different request types, and `answered`/`unanswered`
 * below are the only ways in, pairing each decoder with a handler of its own type.
 */
interface OpcodeBase {
  readonly name: string
  decode(body: Buffer): object
}

/** A request the kernel waits on: the handler's result (or error) is the reply. */
export interface Answered extends OpcodeBase {
  readonly unanswered?: undefined
  /** Whether the handler may keep views of the request's buffer (a large WRITE's data), which must then not be reused. */
  readonly keepsBody?: (req: object) => boolean
  handle(ops: FuseOps, h: RequestHeader, req: object): Reply | Promise<Reply>
}

/** FORGET, BATCH_FORGET, INTERRUPT: the kernel takes no reply; handled at once, synchronously. */
export interface Unanswered extends OpcodeBase {
  readonly unanswered: true
  handle(ops: FuseOps, h: RequestHeader, req: object): void
}

export type Opcode = Answered | Unanswered

type Handler<T, R> = (ops: FuseOps, h: RequestHeader, req: T) => R

function answered<T extends object>(name: string, decode: (body: Buffer) => T, handle: Handler<T, Reply | Promise<Reply>>, keepsBody?: (req: T) => boolean): Answered {
  return { name, decode, handle, keepsBody: keepsBody as Answered['keepsBody'] }
}

function unanswered<T extends object>(name: string, decode: (body: Buffer) => T, handle: Handler<T, void>): Unanswered {
  return { name, decode, handle, unanswered: true }
}

const OPCODES = new Map<number, Opcode>([
  [OP.INIT, answered('INIT', decodeInit, (o, h, r) => o.session.init(h, r))],
  [OP.DESTROY, answered('DESTROY', decodeEmpty, () => undefined)],
  [OP.STATFS, answered('STATFS', decodeEmpty, (o) => o.session.statfs())],
  [OP.FORGET, unanswered('FORGET', decodeForget, (o, h, r) => o.session.forget(h, r))],
  [OP.BATCH_FORGET, unanswered('BATCH_FORGET', decodeBatchForget, (o, h, r) => o.session.batchForget(h, r))],
  // every request here finishes quickly on its own and is answered then
  [OP.INTERRUPT, unanswered('INTERRUPT', decodeInterrupt, () => {})],

  [OP.LOOKUP, answered('LOOKUP', decodeName, (o, h, r) => o.entries.lookup(h, r))],
  [OP.MKNOD, answered('MKNOD', decodeMknod, (o, h, r) => o.entries.mknod(h, r))],
  [OP.MKDIR, answered('MKDIR', decodeMkdir, (o, h, r) => o.entries.mkdir(h, r))],
  [OP.SYMLINK, answered('SYMLINK', decodeSymlink, (o, h, r) => o.entries.symlink(h, r))],
  [OP.LINK, answered('LINK', decodeLink, (o, h, r) => o.entries.link(h, r))],
  [OP.UNLINK, answered('UNLINK', decodeName, (o, h, r) => o.entries.unlink(h, r))],
  [OP.RMDIR, answered('RMDIR', decodeName, (o, h, r) => o.entries.rmdir(h, r))],
  [OP.RENAME, answered('RENAME', decodeRename, (o, h, r) => o.entries.rename(h, r))],
  [OP.RENAME2, answered('RENAME2', decodeRename2, (o, h, r) => o.entries.rename(h, r))],

  [OP.GETATTR, answered('GETATTR', decodeGetattr, (o, h, r) => o.inodes.getattr(h, r))],
  [OP.SETATTR, answered('SETATTR', decodeSetattr, (o, h, r) => o.inodes.setattr(h, r))],
  [OP.READLINK, answered('READLINK', decodeEmpty, (o, h) => o.inodes.readlink(h))],
  [OP.ACCESS, answered('ACCESS', decodeAccess, (o, h, r) => o.inodes.access(h, r))],

  [OP.OPEN, answered('OPEN', decodeOpen, (o, h, r) => o.files.open(h, r))],
  [OP.CREATE, answered('CREATE', decodeCreate, (o, h, r) => o.files.create(h, r))],
  [OP.READ, answered('READ', decodeRead, (o, h, r) => o.files.read(h, r))],
  [OP.WRITE, answered('WRITE', decodeWrite, (o, h, r) => o.files.write(h, r), writeKeepsBody)],
  [OP.FLUSH, answered('FLUSH', decodeFlush, (o, h, r) => o.files.flush(h, r))],
  [OP.RELEASE, answered('RELEASE', decodeRelease, (o, h, r) => o.files.release(h, r))],
  [OP.FSYNC, answered('FSYNC', decodeFsync, (o, h, r) => o.files.fsync(h, r))],

  [OP.OPENDIR, answered('OPENDIR', decodeOpen, (o, h, r) => o.dirs.opendir(h, r))],
  [OP.READDIR, answered('READDIR', decodeRead, (o, h, r) => o.dirs.readdir(h, r))],
  [OP.READDIRPLUS, answered('READDIRPLUS', decodeRead, (o, h, r) => o.dirs.readdirplus(h, r))],
  [OP.RELEASEDIR, answered('RELEASEDIR', decodeRelease, (o, h, r) => o.dirs.releasedir(h, r))],
  [OP.FSYNCDIR, answered('FSYNCDIR', decodeFsync, (o, h, r) => o.dirs.fsyncdir(h, r))],

  [OP.GETXATTR, answered('GETXATTR', decodeGetxattr, (o, h, r) => o.xattrs.getxattr(h, r))],
  [OP.LISTXATTR, answered('LISTXATTR', decodeListxattr, (o, h, r) => o.xattrs.listxattr(h, r))],
  [OP.SETXATTR, answered('SETXATTR', decodeSetxattr, (o, h, r) => o.xattrs.setxattr(h, r))],
  [OP.REMOVEXATTR, answered('REMOVEXATTR', decodeName, (o, h, r) => o.xattrs.removexattr(h, r))],
])

/** The opcode's entry; none for opcodes Strata does not implement (answered ENOSYS). */
export function opcodeOf(opcode: number): Opcode | undefined {
  return OPCODES.get(opcode)
}
