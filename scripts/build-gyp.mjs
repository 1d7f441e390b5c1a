#!/usr/bin/env node
// Builds the CPU-only addon with node-gyp from bindings.gyp, in a scratch copy of the sources so
// the CMake build in build/ is left alone. Usage: node scripts/build-gyp.mjs [--out file.node]
import { cpSync, existsSync, mkdtempSync, mkdirSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outIdx = process.argv.indexOf('--out');
const out = resolve(outIdx > 0 ? process.argv[outIdx + 1] : join(root, 'build-gyp', 'kiln.node'));

const work = mkdtempSync(join(tmpdir(), 'kiln-gyp-'));
for (const p of ['native', 'kernels', 'package.json']) cpSync(join(root, p), join(work, p), { recursive: true });
// node-gyp reads binding.gyp; the project keeps the description as bindings.gyp.
copyFileSync(join(root, 'bindings.gyp'), join(work, 'binding.gyp'));
symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));

// Node's own headers: npm's configured nodedir, else the running Node's install prefix.
const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath)), '/usr'].filter(Boolean);
const nodedir = candidates.find((d) => existsSync(join(d, 'include', 'node', 'common.gypi')));
const gyp = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')]
  .find((p) => p && existsSync(p));
if (!gyp) {
  console.error('kiln: node-gyp not found (it ships with npm)');
  process.exit(1);
}
const args = [gyp, 'rebuild', '--directory', work, '-j', '2'];
if (nodedir) args.push(`--nodedir=${nodedir}`);
console.log(`kiln: node-gyp build in ${work}${nodedir ? ` (headers from ${nodedir})` : ''}`);
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
mkdirSync(dirname(out), { recursive: true });
copyFileSync(join(work, 'build', 'Release', 'kiln.node'), out);
console.log(`kiln: wrote ${out}`);
