/**
 * Public types of the Strata storage engine.
 *
 * Lifecycle (the same model as containerd's Snapshotter, which users of layered stores know):
 *
 *   - A *committed* snapshot is immutable. It is the only kind that can be a parent. It is made by
 *     `commit(name, key)` of an active snapshot, or directly by `snapshotDir` / layer import.
 *   - An *active* snapshot (`prepare(key, parent?)`) is the parent's tree plus a writable upper layer.
 *     Every change made through `store.fs(key)` lands in that upper layer with overlayfs semantics:
 *     copy-up on first modification, whiteouts for removals, opaque dirs, redirects for dir renames.
 *   - A *view* (`view(key, parent)`) is a read-only handle on a committed snapshot's tree; writes give EROFS.
 *   - `commit(name, key)` seals the active snapshot's upper layer under a new committed name and removes
 *     the active key. It copies no file data: the layer's records become immutable where they are.
 *   - `remove(key)` deletes a snapshot of any kind, refused while other snapshots name it as parent.
 *     Chunks and index nodes it alone used are reclaimed by `gc()`.
 *
 * Keys of every kind share one namespace. A parent of `""` (or none) is the empty tree.
 */

export type SnapshotKind = 'active' | 'view' | 'committed'

export interface SnapshotInfo {
  /** Key (active/view) or name (committed). */
  name: string
  kind: SnapshotKind
  /** Name of the committed parent, or '' for the empty tree. */
  parent: string
  labels: Record<string, string>
  /** Milliseconds since the epoch. */
  created: number
  updated: number
}

export interface Usage {
  /** Bytes of file data held by this snapshot's own layer (not its parents'). */
  size: number
  /** Entries (names, including whiteouts) in this snapshot's own layer. */
  inodes: number
}

export interface WalkFilter {
  kind?: SnapshotKind
  parent?: string
  /** `key` or `key=value`. */
  label?: string
}

/** Caller's credentials; every fs call is checked with them, as the kernel checks the task's creds. */
export interface Creds {
  uid: number
  gid: number
  groups?: number[]
  /**
   * The caller has already walked the path with these credentials (a kernel's VFS in front of
   * Strata, as under FUSE): search permission on the directories passed is not checked again.
   * A file with several names may then be reached under a name the caller could not walk.
   */
  pathWalked?: boolean
}

export const ROOT: Creds = Object.freeze({ uid: 0, gid: 0, groups: [] as number[] })

/** How directory redirects are handled, as the kernel's `redirect_dir=` mount option. */
export type RedirectPolicy = 'on' | 'follow' | 'nofollow' | 'off'

export interface OverlayOptions {
  /** Default 'on'. With 'off' or 'nofollow' redirects are neither created nor followed. */
  redirectDir?: RedirectPolicy
  /** Longest redirect path accepted, in bytes (kernel default 256). */
  redirectMax?: number
  /**
   * As the kernel module's `redirect_always_follow`: with 'off', redirects are still followed (not
   * created). Default false, the safe choice: a layer from an untrusted source cannot use a
   * redirect to reach directories its author could not read.
   */
  redirectAlwaysFollow?: boolean
}

export interface FsOptions extends OverlayOptions {
  creds?: Creds
}

export type DiffKind = 'added' | 'modified' | 'deleted'
export interface DiffEntry {
  kind: DiffKind
  path: string
}

export interface FsckReport {
  ok: boolean
  problems: string[]
  checked: {
    snapshots: number; layers: number; inodes: number; chunks: number; nodes: number
    /** With verifyData: inline contents written before format 3, which have no checksum to verify them by. */
    unverifiable?: number
  }
}

export interface GcReport {
  /** Temporary snapshots (`.import-*`) of imports whose process was killed, removed with their layers. */
  orphansRemoved: number
  chunksRemoved: number
  /** Bytes of the chunks removed. */
  bytesRemoved: number
  nodesRemoved: number
  layersRemoved: number
  /** Pack files deleted, after their live chunks (if any) were copied to a new pack. */
  packsRemoved: number
  /** Bytes of the live chunks copied out of mostly-empty packs. */
  bytesRepacked: number
  /** Disk space given back by the deleted packs, less what the copies took. */
  packBytesFreed: number
}

/** Progress callback for long operations (snapshot, checkout, gc). */
export type ProgressFn = (done: number, total: number | undefined, what: string) => void

export interface SnapshotDirOptions extends OverlayOptions {
  name: string
  parent?: string
  labels?: Record<string, string>
  progress?: ProgressFn
}

export interface CheckoutOptions {
  progress?: ProgressFn
}

/**
 * How a layer travels outside the store:
 *   - 'oci': an OCI image layer tar (`.tar`, or gzip-compressed), with `.wh.<name>` whiteouts and
 *     `.wh..wh..opq` opaque markers, as Docker and containerd read and write them.
 *   - 'overlay': host directories in the kernel overlayfs on-disk format (char 0/0 whiteouts,
 *     `overlay.opaque` and `overlay.redirect` xattrs), usable as `lowerdir=` of a mount.
 */
export type LayerFormat = 'oci' | 'overlay'

export interface ImportLayerOptions {
  format: LayerFormat
  /** Name of the new committed snapshot. */
  name: string
  /** Committed snapshot the layer applies to ('' or none: the empty tree). */
  parent?: string
  labels?: Record<string, string>
  /** 'overlay' only: the layer dirs carry `user.overlay.*` xattrs instead of `trusted.overlay.*`. */
  userxattr?: boolean
  /** Bytes of the source read so far. */
  progress?: ProgressFn
}

export interface ExportLayerOptions {
  format: LayerFormat
  /** 'oci' only: the whole tree of the snapshot rather than its own changes against its parent. */
  flatten?: boolean
  /** 'overlay' only: write the markers as `user.overlay.*` (mount with `userxattr`). */
  userxattr?: boolean
  /** 'oci': bytes of file data written so far. */
  progress?: ProgressFn
}

export interface ExportResult {
  format: LayerFormat
  /** The tar file ('oci') or the directory holding the layer dirs ('overlay'), absolute. */
  path: string
  /** 'overlay': the `lowerdir=` value that mounts the snapshot's tree, top layer first. */
  lowerdir?: string
}

/** What `Store.repair` lost in one snapshot: whole-snapshot problems, and paths that cannot be read back whole. */
export interface SnapshotLoss {
  name: string
  kind: SnapshotKind
  /** What the snapshot itself lost (its parent, its layer, its index root). */
  problems: string[]
  /** Paths of its tree that are gone or damaged, each with what is missing. */
  paths: { path: string; problem: string }[]
}

/**
 * The outcome of `Store.repair`: what LevelDB's repair salvaged, and what is lost, by snapshot and
 * path. `ok` is true only when no table was lost and every snapshot reads back whole. A snapshot
 * whose every record was in a lost table leaves no trace to name it by: `lostTables` says that
 * records are gone even where no snapshot can be named.
 */
export interface RepairReport {
  ok: boolean
  store: string
  /** Copy of `db/` as it was before the repair (undefined when there was no `db/`). */
  backup?: string
  /** What LevelDB reported when asked to open the database before the repair (undefined: it opened). */
  found?: string
  /** Table files whose records are gone: missing from `db/`, or unreadable (set aside). */
  lostTables: number
  /** Files LevelDB moved to `db/lost/` during this repair: manifests and logs it replaced, tables it could not read. */
  setAside: string[]
  /** Records salvaged, by key prefix (`S/`, `I/`, `P/`, …). */
  records: Record<string, number>
  /** Store records the repair wrote back: the format record, id counters raised above every id in use. */
  rewritten: string[]
  /** Snapshots whose trees read back whole. */
  intact: string[]
  /** Snapshots that lost something. */
  damaged: SnapshotLoss[]
  /** Snapshots known to be gone: named as a parent by a surviving snapshot, but without a record. */
  lostSnapshots: string[]
  /** Layers with records but no snapshot: their snapshot's record was lost (or they await gc). */
  orphanLayers: string[]
  /** Pack files no chunk pointer names any more: gc deletes them. */
  unreferencedPacks: string[]
}
