import { FOPEN, openOut, packDirents, type DirEntryOut, type RequestHeader } from '../kernel.js'
import type { FuseOps } from '../ops.js'
import { pathIn } from '../nodes.js'
import { fail, toAttr } from '../replies.js'
import type { FsyncIn, OpenIn, ReaddirIn, ReleaseIn } from '../requests.js'

/** DT_DIR, for the '.' and '..' entries of a listing. */
const DT_DIR = 4
/** Listings kept for READDIRs without OPENDIR: the kernel caches what it read, so this only spans one directory's several READDIRs. */
const LISTINGS_KEPT = 64

interface Listing {
  path: string
  nodeid: number
  entries: DirEntryOut[]
}

/**
 * Directory listings. OPENDIR reads the whole listing, and READDIR hands it out by offset.
 * Trees that never change answer OPENDIR with ENOSYS (`FuseOps.noOpendir`), which the kernel
 * takes as "no opendir here": it opens directories itself, keeping their listings cached (as
 * FOPEN_CACHE_DIR does) and sending neither OPENDIR nor RELEASEDIR again. A warm `ls -lR` then
 * makes no round trip. READDIR comes with no handle then, and the listing is kept by nodeid.
 */
export class DirHandlers {
  private readonly open = new Map<number, Listing>()
  private readonly byNode = new Map<number, Listing>()

  constructor(private readonly ops: FuseOps) {}

  async opendir(h: RequestHeader, _r: OpenIn): Promise<Buffer> {
    if (this.ops.noOpendir) throw fail('ENOSYS')
    const fh = this.ops.openFiles.newFh()
    this.open.set(fh, await this.listing(h))
    return openOut(fh, this.ops.cache.cacheDir ? FOPEN.CACHE_DIR | FOPEN.KEEP_CACHE : 0)
  }

  async readdir(h: RequestHeader, r: ReaddirIn): Promise<Buffer> {
    return packDirents((await this.listingOf(h, r)).entries.slice(r.offset), r.size, false, 0, 0).buf
  }

  /**
   * READDIR with each entry's lookup reply, so `ls -l` needs no LOOKUP per name. Only what fits
   * in the reply is stat'ed and remembered: every entry sent with attributes is a lookup the
   * kernel will forget.
   */
  async readdirplus(h: RequestHeader, r: ReaddirIn): Promise<Buffer> {
    const dir = await this.listingOf(h, r)
    const { entryTimeout, attrTimeout } = this.ops.cache
    const rest = dir.entries.slice(r.offset)
    const fits = packDirents(rest, r.size, true, 0, 0).count
    const fs = await this.ops.fsFor(h)
    const chosen = rest.slice(0, fits)
    const named = chosen.filter((e) => e.name !== '.' && e.name !== '..')
    // the directory may be gone by now: its entries then go without attributes
    const stats = await fs.lstatChildren(dir.path, named.map((e) => e.name)).catch(() => named.map(() => null))
    const statOf = new Map(named.map((e, i) => [e.name, stats[i]!]))
    const withAttrs: DirEntryOut[] = []
    for (const e of chosen) {
      const st = statOf.get(e.name) ?? null
      if (st === null) { withAttrs.push({ ...e, nodeid: 0, attr: null }); continue }
      const path = pathIn(dir.path, e.name)
      const split = await this.ops.splits(fs, path, st)
      withAttrs.push({ ...e, nodeid: this.ops.nodes.remember(dir.nodeid, e.name, st.ino, split), attr: toAttr(st) })
    }
    const packed = packDirents(withAttrs, r.size, true, entryTimeout, attrTimeout)
    // everything chosen fits, so every lookup counted above reaches the kernel
    if (packed.count !== withAttrs.length) throw new Error('readdirplus: entries measured to fit did not')
    return packed.buf
  }

  async releasedir(_h: RequestHeader, r: ReleaseIn): Promise<undefined> {
    this.open.delete(r.fh)
    return undefined
  }

  /** Directories hold nothing unwritten of their own: the store is synced as a whole. */
  async fsyncdir(h: RequestHeader, _r: FsyncIn): Promise<undefined> {
    await (await this.ops.fsFor(h)).sync()
    return undefined
  }

  /** Forgets the open directories when the session ends. */
  releaseAll(): void {
    this.open.clear()
  }

  /** The listing a READDIR continues: its OPENDIR's, or without OPENDIR the node's own. */
  private async listingOf(h: RequestHeader, r: ReaddirIn): Promise<Listing> {
    const dir = this.ops.noOpendir && r.fh === 0 ? await this.listingByNode(h, r.offset) : this.open.get(r.fh)
    if (!dir) throw fail('EBADF')
    return dir
  }

  /** The entries of a directory, '.' and '..' first, as READDIR hands them out by offset. */
  private async listing(h: RequestHeader): Promise<Listing> {
    const path = this.ops.pathOf(h.nodeid)
    const fs = await this.ops.fsFor(h)
    const listing = await fs.readdir(path, { withFileTypes: true })
    // nodeids are not always inode numbers: '.' and '..' carry the inodes' own
    const self = (await fs.lstat(path)).ino
    const parentPath = this.ops.nodes.path(this.ops.nodes.parentOf(h.nodeid))
    const parent = path === '/' || parentPath === null ? self : (await this.ops.root.lstat(parentPath)).ino
    const entries: DirEntryOut[] = [
      { name: '.', ino: self, type: DT_DIR, off: 1 },
      { name: '..', ino: parent, type: DT_DIR, off: 2 },
      ...listing.map((d, i) => ({ name: d.name, ino: d.ino, type: d.type, off: i + 3 })),
    ]
    return { path, nodeid: h.nodeid, entries }
  }

  /** Without OPENDIR (an unchanging tree): the directory's listing, made at its first READDIR and kept while the kernel holds its node. */
  private async listingByNode(h: RequestHeader, offset: number): Promise<Listing> {
    let dir = this.byNode.get(h.nodeid)
    if (!dir || offset === 0) {
      dir = await this.listing(h)
      if (this.byNode.size >= LISTINGS_KEPT) this.byNode.delete(this.byNode.keys().next().value!)
      this.byNode.set(h.nodeid, dir)
    }
    return dir
  }
}
