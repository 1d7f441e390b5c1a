#!/usr/bin/env node
// Builds the native addon with cmake-js. KILN_CUDA=auto|0|1 (default auto: CUDA kernels are
// compiled when nvcc is found). Nothing is downloaded: headers come from node-api-headers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = (process.env.KILN_CUDA ?? 'auto').toLowerCase();
if (!['auto', '0', '1'].includes(mode)) {
  console.error(`kiln: KILN_CUDA must be auto, 0 or 1 (got '${process.env.KILN_CUDA}')`);
  process.exit(2);
}

function findNvcc() {
  const candidates = [process.env.CUDACXX, process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin/nvcc'),
    '/usr/local/cuda/bin/nvcc'].filter(Boolean);
  for (const c of candidates) if (existsSync(c)) return c;
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : null;
}

const nvcc = mode === '0' ? null : findNvcc();
if (mode === '1' && !nvcc) {
  console.error('kiln: KILN_CUDA=1 but nvcc was not found (set CUDACXX or CUDA_HOME)');
  process.exit(1);
}
const cuda = Boolean(nvcc);
console.log(`kiln: building the native addon (${cuda ? `CPU + CUDA, nvcc at ${nvcc}` : 'CPU only'})`);

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const jobs = process.env.KILN_BUILD_JOBS ?? '2';
// Warnings are errors in CI (CI=true, or KILN_WERROR=1), so they never pile up there; a user's
// install with another nvcc or g++ version only warns.
const werror = process.env.KILN_WERROR ? process.env.KILN_WERROR === '1' : Boolean(process.env.CI);

/** Configures (every time: incremental, and it picks up a changed KILN_CUDA) and builds; true when both succeed. */
function build(withCuda) {
  const common = ['--directory', root, '--out', join(root, 'build'), `--CDKILN_CUDA=${withCuda ? 'ON' : 'OFF'}`,
    `--CDKILN_WERROR=${werror ? 'ON' : 'OFF'}`];
  if (withCuda) common.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`);
  if (withCuda && process.env.KILN_CUDA_ARCHS) common.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.KILN_CUDA_ARCHS}`);
  for (const verb of ['configure', 'build']) {
    const args = [cmakeJs, verb, ...common];
    if (verb === 'build') args.push('--parallel', jobs);
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
    if (r.status !== 0) return false;
  }
  return true;
}

if (!build(cuda)) {
  // KILN_CUDA=auto promises the CUDA kernels where they can be built, not a failed install: a
  // toolkit that cannot build them (too old for sm_90, an unsupported host compiler) leaves a
  // CPU-only addon, which is what a machine without nvcc gets.
  // Only a package install falls back: CI (CI=true) and a developer's own build must see the error.
  const install = process.env.npm_lifecycle_event === 'install' && !process.env.CI;
  if (!cuda || mode !== 'auto' || !install) process.exit(1);
  console.error(`kiln: the CUDA build with ${nvcc} failed (output above); building the CPU-only addon instead ` +
    '(KILN_CUDA=1 makes this an error; KILN_CUDA=0 skips CUDA)');
  if (!build(false)) process.exit(1);
  console.error('kiln: built the CPU-only addon: kiln.cuda.isAvailable() will be false');
}
