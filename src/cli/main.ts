#!/usr/bin/env node
// `kiln <command> ...` (the command table and error handling are in kiln.ts).
import { runKiln } from './kiln.js';

runKiln(process.argv.slice(2)).then((code) => { process.exitCode = code; });
