// CUDA matmul (kernels/cuda/gemm.cu) against the CPU in float64 at awkward shapes: 1x1x1, sizes
// that are not multiples of any tile, K = 0, transposed and narrowed views, batches (broadcast,
// strided), alpha/beta through the native entry point, and 1024^3. float32 runs in both matmul
// precisions: 'highest' (3xTF32) must hold float32 accuracy, 'high' (TF32) about 1e-3. The error is
// measured against sum_k |a_ik b_kj| (what rounding scales with), so cancellation cannot hide or
// fake a failure. Skipped (visibly) without a GPU.
import test, { type ExecutionContext } from 'ava';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { A, N } from '../src/native.js';
import { arg } from '../src/ops/util.js';
import { cudaReason, normals, prng } from './helpers/checkop.js';

const gpu = kiln.cuda.isAvailable();
if (!gpu) test.skip(`every cuda matmul check in this file (skipped: ${cudaReason()})`, () => {});
const cudaTest = (title: string, body: (t: ExecutionContext) => void) => {
  if (gpu) test.serial(title, body);
};

type Precision = 'highest' | 'high';
/** Allowed |cuda - reference| per unit of sum |a b| (and of |beta c|). */
const TOL: Record<Precision | 'float64' | 'half', number> = { highest: 1e-5, high: 5e-3, float64: 1e-12, half: 1e-5 };

function withPrecision<T>(p: Precision, fn: () => T): T {
  const saved = kiln.cuda.getMatmulPrecision();
  kiln.cuda.setMatmulPrecision(p);
  try {
    return fn();
  } finally {
    kiln.cuda.setMatmulPrecision(saved);
  }
}

let seed = 1;
const randn = (shape: number[]): Tensor => {
  const n = shape.reduce((p, d) => p * d, 1);
  return kiln.tensor(Float32Array.from(normals(prng(seed++), n)), { shape });
};

/** Every element: |got - want| <= tol * scale + tiny; reports the worst one. */
function within(t: ExecutionContext, what: string, got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>, tol: number, outRel = 0): void {
  t.is(got.length, want.length, `${what}: ${got.length} values, want ${want.length}`);
  let worst = -1, worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const allowed = tol * scale[i] + outRel * Math.abs(want[i]) + 1e-30;
    const ratio = Math.abs(got[i] - want[i]) / allowed;
    if (!(ratio <= 1) && (worst < 0 || !(ratio <= worstRatio))) {
      worst = i;
      worstRatio = ratio;
    }
  }
  if (worst >= 0) t.fail(`${what}: element ${worst} is ${got[worst]}, want ${want[worst]} (sum|ab| ${scale[worst]}, tol ${tol})`);
  else t.pass();
}

/** Runs op on cuda (inputs are CPU float32 leaves) and checks it against float64 on the CPU. */
function check(t: ExecutionContext, what: string, inputs: Tensor[], op: (...xs: Tensor[]) => Tensor, precisions: Precision[] = ['highest', 'high']): void {
  kiln.tidy(() => {
    const want = op(...inputs.map((x) => x.to('float64')));
    const scale = op(...inputs.map((x) => x.to('float64').abs())).dataSync();
    const onGpu = inputs.map((x) => x.to('cuda'));
    for (const p of precisions) {
      const got = withPrecision(p, () => op(...onGpu));
      t.is(got.device, 'cuda', `${what}: output on ${got.device}`);
      t.is(got.dtype, 'float32', `${what}: output dtype`);
      t.deepEqual(got.shape, want.shape, `${what}: shape`);
      within(t, `${what} [${p}]`, got.to('cpu').dataSync(), want.dataSync(), scale, TOL[p]);
    }
    const got64 = op(...onGpu.map((x) => x.to('float64')));
    within(t, `${what} [float64]`, got64.to('cpu').dataSync(), want.dataSync(), scale, TOL.float64);
  });
  for (const x of inputs) x.dispose();
}

const mm = (a: Tensor, b: Tensor) => a.matmul(b);

cudaTest('cuda matmul 1x1x1', (t) => check(t, '1x1x1', [randn([1, 1]), randn([1, 1])], mm));
cudaTest('cuda matmul 127x65 @ 65x129 (no tile divides it)', (t) => check(t, '127x129x65', [randn([127, 65]), randn([65, 129])], mm));
cudaTest('cuda matmul A^T, B^T and both (transposed views, no copies)', (t) => {
  check(t, 'A^T B', [randn([65, 127]), randn([65, 129])], (a, b) => a.transpose().matmul(b));
  check(t, 'A B^T', [randn([127, 65]), randn([129, 65])], (a, b) => a.matmul(b.transpose()));
  check(t, 'A^T B^T', [randn([65, 127]), randn([129, 65])], (a, b) => a.transpose().matmul(b.transpose()));
});
cudaTest('cuda matmul on narrowed views (odd leading dims and offsets: element loads)', (t) =>
  check(t, 'narrow', [randn([37, 53]), randn([50, 41])], (a, b) => a.narrow(1, 3, 50).matmul(b.narrow(1, 1, 39))));
cudaTest('cuda matmul K = 0 gives zeros', (t) => check(t, 'K=0', [randn([3, 0]), randn([0, 5])], mm));
cudaTest('cuda matmul K = 1 and a row vector', (t) => {
  check(t, 'K=1', [randn([300, 1]), randn([1, 257])], mm);
  check(t, 'vector @ matrix', [randn([1000]), randn([1000, 33])], mm);
});
cudaTest('cuda matmul batches (batched, broadcast, batched transposed)', (t) => {
  check(t, 'batched', [randn([3, 33, 29]), randn([3, 29, 47])], mm);
  check(t, 'broadcast B', [randn([4, 2, 17, 9]), randn([9, 31])], mm);
  check(t, 'broadcast A', [randn([17, 9]), randn([5, 9, 31])], mm);
  check(t, 'batched B^T', [randn([2, 40, 24]), randn([2, 72, 24])], (a, b) => a.matmul(b.transpose(-1, -2)));
});
cudaTest('cuda matmul 1024x1024x1024', (t) => check(t, '1024^3', [randn([1024, 1024]), randn([1024, 1024])], mm));
cudaTest('cuda matmul 2048x2304x192 (large tiles, edges)', (t) =>
  check(t, '2048x2304x192', [randn([2048, 192]), randn([192, 2304])], mm, ['highest']));

// Few output tiles and a long K (weight gradients: [in, out] summed over many rows) take split-K:
// K cut into slices run as a batch into a float32 workspace, then summed in a second kernel.
cudaTest('cuda matmul split-K: 128x384 over K = 2688 (one batched launch), 64x96 over K = 2689 (a ragged last slice)', (t) => {
  check(t, 'A^T B K=2688', [randn([2688, 128]), randn([2688, 384])], (a, b) => a.transpose().matmul(b));
  check(t, 'A^T B K=2689', [randn([2689, 64]), randn([2689, 96])], (a, b) => a.transpose().matmul(b));
  check(t, 'A B^T K=1536', [randn([33, 1536]), randn([70, 1536])], (a, b) => a.matmul(b.transpose()));
});

// ---------------------------------------------------------------- the native entry point directly

interface Raw { batch: number; ta: boolean; tb: boolean; M: number; N: number; K: number; alpha: number; beta: number;
  lda: number; ldb: number; ldc: number; sa: number; sb: number; sc: number }

function rawGemm(r: Raw, a: Tensor, b: Tensor, c: Tensor, precision: number): void {
  A[0] = r.batch; A[1] = r.ta ? 1 : 0; A[2] = r.tb ? 1 : 0; A[3] = r.M; A[4] = r.N; A[5] = r.K; A[6] = r.alpha; A[7] = r.beta;
  const ab = arg(8, a), bb = arg(11, b), cb = arg(14, c);
  A[17] = r.lda; A[18] = r.ldb; A[19] = r.ldc; A[20] = r.sa; A[21] = r.sb; A[22] = r.sc; A[23] = precision;
  N.gemm(ab, bb, cb);
}

/** Buffers sized for r, with values; C starts from random values (beta accumulates onto them). */
function rawCheck(t: ExecutionContext, what: string, r: Raw): void {
  const sizeA = (r.batch - 1) * r.sa + (r.ta ? r.K : r.M) * r.lda;
  const sizeB = (r.batch - 1) * r.sb + (r.tb ? r.N : r.K) * r.ldb;
  const sizeC = (r.batch - 1) * r.sc + r.M * r.ldc;
  kiln.tidy(() => {
    const a = randn([sizeA]), b = randn([sizeB]), c0 = randn([sizeC]);
    const want = c0.to('float64');
    rawGemm(r, a.to('float64'), b.to('float64'), want, 0);
    const scale = c0.to('float64').abs().mul(Math.abs(r.beta));
    rawGemm({ ...r, alpha: Math.abs(r.alpha), beta: 1 }, a.to('float64').abs(), b.to('float64').abs(), scale, 0);
    for (const [p, code] of [['highest', 0], ['high', 1]] as const) {
      const c = c0.to('cuda');
      rawGemm(r, a.to('cuda'), b.to('cuda'), c, code);
      // Elements outside the matrices (padding, gaps) must come back untouched: want keeps c0 there.
      within(t, `${what} [${p}]`, c.to('cpu').dataSync(), want.dataSync(), scale.dataSync(), TOL[p]);
    }
  });
}

cudaTest('cuda matmul through the native gemm: alpha/beta, padded leading dims, batch strides with gaps and broadcast', (t) => {
  rawCheck(t, 'beta=0.5 alpha=-2 NN padded', { batch: 1, ta: false, tb: false, M: 70, N: 90, K: 50, alpha: -2, beta: 0.5,
    lda: 53, ldb: 97, ldc: 91, sa: 0, sb: 0, sc: 0 });
  rawCheck(t, 'batch 3, gaps, beta=1 TT', { batch: 3, ta: true, tb: true, M: 33, N: 47, K: 29, alpha: 1, beta: 1,
    lda: 40, ldb: 32, ldc: 48, sa: 29 * 40 + 8, sb: 47 * 32 + 5, sc: 33 * 48 + 3 });
  rawCheck(t, 'batch 4, A broadcast, beta=-1 NT', { batch: 4, ta: false, tb: true, M: 64, N: 72, K: 40, alpha: 0.25, beta: -1,
    lda: 40, ldb: 40, ldc: 72, sa: 0, sb: 72 * 40, sc: 64 * 72 });
  rawCheck(t, 'split-K: K=1500, beta=0.5 alpha=-2 TN padded', { batch: 1, ta: true, tb: false, M: 40, N: 50, K: 1500, alpha: -2, beta: 0.5,
    lda: 44, ldb: 53, ldc: 51, sa: 0, sb: 0, sc: 0 });
  rawCheck(t, 'K=0 beta=2 (C = beta C)', { batch: 2, ta: false, tb: false, M: 5, N: 7, K: 0, alpha: 1, beta: 2,
    lda: 1, ldb: 7, ldc: 7, sa: 5, sb: 0, sc: 35 });
});

cudaTest('cuda matmul precision switch: names, default and errors', (t) => {
  t.is(kiln.cuda.getMatmulPrecision(), 'highest');
  withPrecision('high', () => t.is(kiln.cuda.getMatmulPrecision(), 'high'));
  t.is(kiln.cuda.getMatmulPrecision(), 'highest');
  const err = t.throws(() => kiln.cuda.setMatmulPrecision('medium' as Precision));
  t.is((err as kiln.KilnError).code, 'INVALID_ARGUMENT');
});

cudaTest('cuda matmul in bfloat16 and float16 (float32 accumulation, one rounding)', (t) => {
  const k = kiln as unknown as { cast?: (x: Tensor, d: string) => Tensor };
  if (!k.cast) {
    t.pass('no half dtypes in this build');
    return;
  }
  for (const dtype of ['bfloat16', 'float16'] as const) {
    kiln.tidy(() => {
      // Inputs rounded to the half type first, so the float64 reference sees exactly the same values.
      const a = k.cast!(randn([127, 65]), dtype), b = k.cast!(randn([65, 129]), dtype);
      const a64 = a.to('float64'), b64 = b.to('float64');
      const want = a64.matmul(b64).dataSync(), scale = a64.abs().matmul(b64.abs()).dataSync();
      const got = a.to('cuda').matmul(b.to('cuda'));
      t.is(got.dtype, dtype);
      // One rounding of the float32 sum to the half type: 2^-8 (bfloat16) or 2^-11 (float16) relative.
      within(t, `${dtype} 127x129x65`, got.to('float32').to('cpu').dataSync(), want, scale, TOL.half, dtype === 'bfloat16' ? 2 ** -8 : 2 ** -10);
      // split-K (64 x 128 over K = 2048): the float32 slices are summed before the one rounding
      const c = k.cast!(randn([2048, 64]), dtype), d = k.cast!(randn([2048, 128]), dtype);
      const c64 = c.to('float64').transpose(), d64 = d.to('float64');
      const got2 = c.to('cuda').transpose().matmul(d.to('cuda'));
      within(t, `${dtype} split-K 64x128x2048`, got2.to('float32').to('cpu').dataSync(), c64.matmul(d64).dataSync(),
        c64.abs().matmul(d64.abs()).dataSync(), TOL.half, dtype === 'bfloat16' ? 2 ** -8 : 2 ** -10);
    });
  }
});
