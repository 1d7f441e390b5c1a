// Loads the addon once per environment and hands it the shared argument buffer.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from './errors.js';

type B = ArrayBuffer | undefined;
export interface NativeAddon {
  setup(errorClass: typeof KilnError): { args: ArrayBuffer; cudaCompiled: boolean };
  alloc(device: number, bytes: number): number;
  free(handle: number): boolean;
  copy(dst: B, src: B): void;
  memoryStats(): {
    hostBytes: number; hostAllocations: number; hostCachedBytes: number; hostPeakBytes: number;
    cudaBytes: number; cudaAllocations: number; cudaCachedBytes: number; cudaReservedBytes: number;
  };
  emptyCache(): void;
  setNumThreads(n: number): void;
  numThreads(): number;
  cudaInfo(): { compiled: boolean; available: boolean; deviceCount: number; names: string[] };
  cudaSynchronize(): void;
  unary(out: B, a: B): void;
  binary(out: B, a: B, b: B): void;
  ternary(out: B, c: B, a: B, b: B): void;
  gemm(a: B, b: B, c: B): void;
  /** -1, or (int32 sum) the first output index whose sum does not fit int32. */
  reduce(x: B, y: B): number;
  argReduce(x: B, y: B): void;
  /** -1, or (int32) the first output index whose partial sum does not fit int32. */
  cumsum(x: B, y: B): number;
  topk(x: B, v: B, i: B): void;
  /** Each row of a contiguous [rows, n] float sorted (stable, NaN largest): values and int32 positions. */
  sort(x: B, v: B, i: B): void;
  /** out[p] = x[p with p[axis] = index[p]] (kernels/cpu/select.h; geometry in A[0..34]): -1, or the first bad index position. */
  gather(x: B, index: B, out: B): number;
  /** out[p with p[axis] = index[p]] += src[p], float32 / float64, in index order: -1, or the first bad index position. */
  scatterAdd(out: B, index: B, src: B): number;
  softmax(a: B, g: B, out: B): void;
  layerNormForward(x: B, g: B, b: B, y: B, mean: B, rstd: B): void;
  layerNormBackward(x: B, g: B, mean: B, rstd: B, dy: B, dx: B, dg: B, db: B): void;
  crossEntropyForward(logits: B, t: B, losses: B, lse: B): void;
  crossEntropyBackward(logits: B, t: B, lse: B, dl: B, dx: B): void;
  embedding(src: B, idx: B, dst: B): void;
  /** x [N, C, H, W] -> cols [N, C, kH, kW, Ho, Wo] (kernels/cpu/conv.h; geometry in A[0..14]). */
  im2col(x: B, cols: B): void;
  /** The adjoint: cols -> dx [N, C, H, W], overwritten, deterministic. */
  col2im(cols: B, dx: B): void;
  random(out: B): void;
  findInvalidIndex(idx: B): number;
  adamStep(p: B, g: B, m: B, v: B): void;
  sgdStep(p: B, g: B, buf: B): void;
  sumSquares(x: B): number;
  scaleInplace(x: B): void;
  emaUpdate(shadow: B, p: B): void;
}

function locate(): string {
  if (process.env.KILN_ADDON) return process.env.KILN_ADDON; // e.g. the node-gyp build
  const here = dirname(fileURLToPath(import.meta.url));
  // src/ when run through tsx, dist/src/ when compiled.
  for (const up of ['..', '../..']) {
    for (const sub of ['build/Release/kiln.node', 'build/Debug/kiln.node']) {
      const p = join(here, up, sub);
      if (existsSync(p)) return p;
    }
  }
  throw new KilnError('INTERNAL', 'kiln native addon not found: run `npm install` (or `npm run build`) first');
}

// libgomp reads its wait policy once, when the addon loads it. Its default spins for a long time
// at every barrier, which on a busy or shared machine (2 cores, other processes) costs far more
// than it saves; a short spin then sleep keeps small-op latency and stops the thrashing.
if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = '10000';

const require = createRequire(import.meta.url);
export const N: NativeAddon = require(locate());
const setup = N.setup(KilnError);
/** The shared argument buffer: ops write their arguments here before one call into the addon. */
export const A = new Float64Array(setup.args);
export const cudaCompiled = setup.cudaCompiled;

// The addon reads KILN_NUM_THREADS itself and ignores a value it cannot use (not a whole number in
// [1, 1024]); say so once rather than silently run on every core.
const envThreads = process.env.KILN_NUM_THREADS;
if (envThreads !== undefined && envThreads !== '' && !(/^\d+$/.test(envThreads) && +envThreads >= 1 && +envThreads <= 1024))
  process.emitWarning(`KILN_NUM_THREADS='${envThreads}' is not a whole number in [1, 1024]; using ${N.numThreads()} threads`, { code: 'KILN_NUM_THREADS' });
