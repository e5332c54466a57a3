/**
 * Why the numbers come out as they do, per workload: the mechanisms of each design, written by
 * hand. No figures here: every number on the page comes from the run's JSON, so these
 * paragraphs stay true whatever a run measures.
 */

export interface WorkloadNotes {
  /** The suite's workload number (TableResult.workload) and `--only` name. */
  number: number
  name: string
  heading: string
  why: string
}

export const WORKLOAD_NOTES: WorkloadNotes[] = [
  {
    number: 1,
    name: 'copyup',
    heading: 'Copy-up: a small write into a large lower file',
    why:
      'Kernel overlayfs copies a lower file up before the first write to it lands: the whole file is copied into the upper directory ' +
      '(unless the upper file system can share extents by reflink, every byte is read and written), so the first write costs as much as copying the file, and the ' +
      'upper directory grows by the whole file. fuse-overlayfs copies the file in full too. In Strata over store layers copy-up is a ' +
      "metadata write: the upper inode record points at the lower file's chunks, and the write stores only the chunk it touches and a " +
      'new page of chunk references. Strata over directory layers writes its upper directory in the kernel\'s format, so it copies the ' +
      'data in full, as the kernel does. Through FUSE, the open, the write and the fsync are each a round trip to the daemon, which ' +
      'costs little next to copying a large file; the in-process engine makes none.',
  },
  {
    number: 2,
    name: 'seqread',
    heading: 'Sequential read of a large file',
    why:
      "Warm, the data is in the page cache: kernel overlayfs reads the lower file's cached pages, and Strata's read-only mounts let " +
      'the kernel keep file data across opens, so a warm read never reaches the daemon. Cold, kernel overlayfs reads the lower file ' +
      "in the kernel with the disk's read-ahead, and nothing leaves the kernel. Every cold read through FUSE is a READ request " +
      "answered by a daemon: fuse-overlayfs reads the lower file and hands the kernel its pages; Strata's daemon is JavaScript on one " +
      'thread, decodes each request there, and over store layers reads content-addressed chunks from pack files and LevelDB, where ' +
      "chunks shared with other files lie where they were first written. It reads ahead on libuv's thread pool and replies with " +
      'writev, so no data is copied in JavaScript, but on a machine with few cores the CPU rather than the disk can set the pace. ' +
      'Over directory layers it reads the host file itself. The in-process engine reads the same chunks without the kernel in between.',
  },
  {
    number: 3,
    name: 'randread',
    heading: 'Random reads',
    why:
      'Random small reads defeat read-ahead, so what counts is the cost of each read that misses the page cache. Kernel overlayfs ' +
      'passes it to the lower file inside the kernel. Through FUSE each miss is a round trip to the daemon. Strata over store layers ' +
      'finds the chunk that holds the offset and reads the whole chunk, kept in its chunk cache, so neighbouring reads in the same chunk ' +
      'are served from memory, while a read into a chunk not cached costs a chunk read from the store.',
  },
  {
    number: 4,
    name: 'metadata',
    heading: 'Metadata: find and ls -lR over a large tree',
    why:
      'Kernel overlayfs resolves names and merges directory listings inside the kernel and keeps the results in its dentry and inode ' +
      'caches. Through FUSE, every name the kernel has not cached is a LOOKUP round trip and every listing a READDIR or READDIRPLUS. ' +
      "Strata's read-only mounts let the kernel cache entries, attributes and listings for a long time and answer OPENDIR with ENOSYS, " +
      'so the kernel keeps directory listings itself and a warm listing makes no round trip at all; READDIRPLUS returns attributes with ' +
      'the names, so ls -l needs no LOOKUP per name. Writable directory-layer mounts keep names and attributes only briefly and read ' +
      'listings anew, so they ask the daemon far more often. fuse-overlayfs answers lookups and listings by reading the layer ' +
      'directories on the host. The in-process engine lists from the merged index of a committed snapshot.',
  },
  {
    number: 5,
    name: 'depth',
    heading: 'Lookup depth: stat of a file in the bottom layer',
    why:
      'Kernel overlayfs looks a name up in each layer in turn, from the top, until it finds it, so the first lookup of a file that ' +
      'lives in the bottom layer probes every layer above it; afterwards its dentry cache answers. fuse-overlayfs also probes the ' +
      "layers' directories on the host one by one, and Strata over directory layers merges its stack one layer at a time as the kernel " +
      'does. Strata over store layers answers from the merged directory index that a commit builds: finding a name is a binary search ' +
      'in one cached index node, whatever the number of layers below. Through FUSE, a first stat adds a LOOKUP round trip per path ' +
      'component. The kernel mounts a bounded number of lower layers; systems that cannot take a stack show why.',
  },
  {
    number: 6,
    name: 'smallfiles',
    heading: 'Many small files: create, sync, delete',
    why:
      'Creating a file through FUSE takes several round trips (the lookup of the new name, the create, the write, the release), each ' +
      "through one daemon; Strata's daemon is JavaScript on one thread. Kernel overlayfs creates the files in its upper directory " +
      "inside the kernel, and the upper file system's journal batches their metadata. Strata over store layers writes each new name " +
      'and inode as records in one LevelDB batch, one mutation at a time; over directory layers it makes each file in the work ' +
      'directory and renames it into place, as the kernel does. Deleting files that exist only in the upper layer removes them ' +
      'without leaving whiteouts.',
  },
  {
    number: 7,
    name: 'renamedir',
    heading: 'Renaming a lower directory',
    why:
      'A lower directory cannot be moved: its layer is read-only. Kernel overlayfs with redirect_dir=on makes the new name an upper ' +
      'directory whose redirect xattr names the old path, and leaves a whiteout at the old name, so the rename is a metadata write ' +
      'whatever the number of files below. Without redirects the kernel fails the rename with EXDEV, and tools such as mv then copy ' +
      'the tree file by file and delete the original. fuse-overlayfs has no redirects: renaming a lower directory fails with ' +
      'EXDEV, as its row shows. Strata records the redirect too, in the upper directory record (store layers) or as the same xattr ' +
      'the kernel writes (directory layers), so its rename is a metadata write, one RENAME request through FUSE.',
  },
  {
    number: 8,
    name: 'snapshot',
    heading: 'Snapshots of a build-output tree',
    why:
      'cp -a and tar read and write every byte of the tree in every round and keep a full copy each time, so what they store grows by ' +
      'the whole tree per round. ostree commit checksums the files it commits and stores each distinct file content once in its ' +
      'repository, so duplicate and unchanged files add nothing. Strata cuts file data into content-addressed chunks stored once ' +
      "however many files and snapshots use them, and a snapshot with a parent compares the host's sizes and times with the parent's " +
      'records first, reading only files that changed and storing only chunks whose content is new; duplicate files within the tree ' +
      'are stored once.',
  },
  {
    number: 9,
    name: 'micro',
    heading: 'Engine micro-benchmarks',
    why:
      'These time single engine calls in the process, with neither FUSE nor the kernel in between: a lookup through the merged index of ' +
      'a committed snapshot, a chunk read, a copy-up (the upper records written in one batch, no data copied), and a commit (the merged ' +
      "index built from the layer's changes, rewriting only the index nodes of directories the layer touched). They are the engine's " +
      'own share of every request a FUSE mount serves.',
  },
  {
    number: 10,
    name: 'realtree',
    heading: 'A real tree: untar, read back, rm -rf',
    why:
      'What people do in a read-write mount, with real names and sizes. Kernel overlayfs creates, reads and removes the files in its ' +
      'upper directory inside the kernel. Through FUSE every file tar makes is a dozen round trips to the daemon (counted with ' +
      "the request trace): the lookup of the new name, the parent's attributes (the kernel drops them at every create), " +
      'the create, one WRITE (the writeback cache keeps the data in the kernel until close), two lookups of security.capability ' +
      "(at the first write and at chown), four SETATTRs (owner, mode, times, and the times the kernel writes back at close), the " +
      "flush and the release; every file rm removes is a lookup and an unlink. fuse-overlayfs receives as many requests per file " +
      "and answers each with a few host system calls in C. Strata's daemon answers each in JavaScript on one thread: it finds the " +
      "node's path and resolves it (over store layers through the directories earlier walks kept; over directory layers with a " +
      "host lstat per directory, which can change under the mount), or goes through the file open on the node, reads and writes " +
      "the records the request changes, and that work and the round trip itself each make up about half of what a request costs " +
      "(the daemon's request statistics show it per opcode). Strata over " +
      "store layers keeps names, inodes and chunk references as LevelDB " +
      "records (answered before they land, see docs/format.md, Durability) and file data in its chunk store; over directory layers " +
      "it writes its upper directory in the kernel's format. The read-back runs right after the untar, so it measures how much of " +
      'what was just written each system serves from caches and how much it asks of its daemon. Files that exist only in the upper ' +
      'layer are removed without leaving whiteouts.',
  },
  {
    number: 11,
    name: 'realbuild',
    heading: 'A real build: git clone, then tsc',
    why:
      'What a build job does in a throwaway writable mount: the compiler and its type packages are in the lower layer, the sources and ' +
      'the output land in the upper. git clone receives one pack file, writes it and its index, then checks out every tracked file, ' +
      'so it is a burst of creates, writes, renames and fsyncs in the new directory; through FUSE each of those is one or more round ' +
      "trips to the daemon, while kernel overlayfs creates them in its upper directory inside the kernel. The compile is mostly " +
      'CPU in the compiler: it reads the compiler itself, the standard library declarations and @types from the lower layer once, and ' +
      'the sources just cloned, and writes its outputs a file at a time. Lower files opened read-only are not copied up by any ' +
      "system, so what decides the compile's cost through FUSE is how many lookups, opens and reads reach the daemon and how many " +
      "of the lower's pages the kernel keeps cached between them. Strata over store layers reads the lower's files from its chunk " +
      "store; over directory layers it reads the host files, and writes the upper in the kernel's format.",
  },
]

export function notesFor(workload: number): WorkloadNotes | undefined {
  return WORKLOAD_NOTES.find((w) => w.number === workload)
}
