import { statfs } from 'node:fs/promises'
import { INIT, INIT2, KERNEL_MINOR, initOut, statfsOut, type RequestHeader } from '../kernel.js'
import { PassthroughFiles } from '../passthrough.js'
import type { FuseOps } from '../ops.js'
import { fail } from '../replies.js'
import type { BatchForgetIn, ForgetIn, InitIn } from '../requests.js'

/** Largest request the session negotiates: 256 pages, so sequential reads come in 1 MiB pieces. */
export const MAX_WRITE = 1 << 20
const MAX_PAGES = 256

/** The session itself: the INIT handshake, the file system's totals, and the lookups the kernel gives back. */
export class SessionHandlers {
  constructor(private readonly ops: FuseOps) {}

  init(_h: RequestHeader, k: InitIn): Buffer {
    if (k.major !== 7) throw fail('EPROTO')
    const cache = this.ops.cache
    // HANDLE_KILLPRIV_V2: the engine drops set-id bits on write, truncate and chown as the
    // kernel would (by the caller's credentials), and the kernel, trusting that, stops asking
    // for security.capability before every write(2): one round trip per write fewer
    const wanted = INIT.ASYNC_READ | INIT.ATOMIC_O_TRUNC | INIT.BIG_WRITES | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO |
      INIT.PARALLEL_DIROPS | INIT.HANDLE_KILLPRIV | INIT.HANDLE_KILLPRIV_V2 | INIT.MAX_PAGES | INIT.POSIX_ACL |
      (cache.keepCache ? INIT.CACHE_SYMLINKS : 0) | (cache.cacheDir ? INIT.NO_OPENDIR_SUPPORT : 0) |
      (cache.writeback ? INIT.WRITEBACK_CACHE : 0)
    this.ops.noOpendir = (k.flags & wanted & INIT.NO_OPENDIR_SUPPORT) !== 0
    this.ops.writeback = (k.flags & wanted & INIT.WRITEBACK_CACHE) !== 0
    const passthrough = this.agreePassthrough(k)
    return initOut({
      minor: Math.min(k.minor, KERNEL_MINOR),
      maxReadahead: Math.min(k.maxReadahead, MAX_WRITE),
      flags: (k.flags & wanted) | (passthrough ? INIT.INIT_EXT : 0),
      flags2: passthrough ? INIT2.PASSTHROUGH : 0,
      // the backing files lie on a plain file system, and this mount may itself be an overlay's lower
      maxStackDepth: passthrough ? 1 : 0,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
    })
  }

  /**
   * Passthrough where the mount offers a backing registry and the kernel has it (it refuses it
   * beside the writeback cache). A registry the kernel then refuses (no CAP_SYS_ADMIN) turns it
   * off for the session after one line in the log.
   */
  private agreePassthrough(k: InitIn): boolean {
    const backing = this.ops.opts.backing
    const offered = (k.flags & INIT.INIT_EXT) !== 0 && (k.flags2 & INIT2.PASSTHROUGH) !== 0
    if (backing === undefined || !offered || this.ops.writeback) return false
    this.ops.passthrough = new PassthroughFiles(backing, (err) => {
      process.stderr.write(`strata fuse: passthrough off, reads go through the daemon: ${err.message}\n`)
    })
    return true
  }

  /** The totals of the host file system that holds the data (the store, or the upper dir). */
  async statfs(): Promise<Buffer> {
    const s = await statfs(this.ops.opts.statfsPath)
    return statfsOut({ blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize })
  }

  forget(h: RequestHeader, r: ForgetIn): void {
    this.ops.nodes.forget(h.nodeid, r.nlookup)
  }

  batchForget(_h: RequestHeader, r: BatchForgetIn): void {
    for (const f of r.forgets) this.ops.nodes.forget(f.nodeid, f.nlookup)
  }
}
