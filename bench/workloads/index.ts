/** Every workload of the suite, in number order (`--only` takes their names). */
import type { Workload } from '../suite/types.js'
import { copyupWorkload } from './copyup.js'
import { seqreadWorkload } from './seqread.js'
import { randreadWorkload } from './randread.js'
import { metadataWorkload } from './metadata.js'
import { depthWorkload } from './depth.js'
import { smallfilesWorkload } from './smallfiles.js'
import { renamedirWorkload } from './renamedir.js'
import { snapshotWorkload } from './snapshot.js'
import { microWorkload } from './micro.js'
import { realtreeWorkload } from './realtree.js'
import { realbuildWorkload } from './realbuild.js'

export const WORKLOADS: Workload[] = [
  copyupWorkload,
  seqreadWorkload,
  randreadWorkload,
  metadataWorkload,
  depthWorkload,
  smallfilesWorkload,
  renamedirWorkload,
  snapshotWorkload,
  microWorkload,
  realtreeWorkload,
  realbuildWorkload,
].sort((a, b) => a.number - b.number)
