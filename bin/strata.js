#!/usr/bin/env node
import { run } from '../dist/fuse/cli.js'

process.exitCode = await run(process.argv)
