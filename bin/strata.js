#!/usr/bin/env node
import { main } from '../dist/engine/cli/main.js'

process.exitCode = await main(process.argv)
