#!/usr/bin/env node
// mount(8)'s call of mount.fuse.strata, run as `strata mount` (see bin/mount.fuse.strata).
import { helperMain } from '../dist/fuse/cli.js'

process.exitCode = await helperMain(process.argv.slice(2))
