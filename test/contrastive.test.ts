// Fused contrastive losses (NT-Xent, CISSL, CLIP, DISSL terms) against plain references built from
// unfused kiln ops (the whole similarity matrix materialised), forward and backward, plus float64
// finite differences, bad input, and a memory check at 16k views.
import test from 'ava';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { matmul, mul, sum, mean, sqrt, div, logSoftmax, softmax, maskedFill, log, exp, neg } = kiln;

function normalize(x: Tensor): Tensor {
  return div(x, sqrt(sum(mul(x, x), 1, true)));
}

// A [R, R] float matrix from a function of (i, j).
function matrix(R: number, f: (i: number, j: number) => number, dtype: 'float32' | 'float64'): Tensor {
  const v = new Float64Array(R * R);
  for (let i = 0; i < R; i++) for (let j = 0; j < R; j++) v[i * R + j] = f(i, j);
  return kiln.fromTyped(dtype === 'float32' ? Float32Array.from(v) : v, [R, R], { dtype });
}

/** InfoNCE with the similarity matrix materialised: -sum_j W_ij log softmax(S_i)_j, averaged. */
function infoNCERef(q: Tensor, k: Tensor | null, o: { temperature: number; cosine: boolean; maskSelf: boolean; selfWeight: number }): Tensor {
  const R = q.shape[0], half = R / 2;
  const qn = o.cosine ? normalize(q) : q;
  const kn = k ? (o.cosine ? normalize(k) : k) : qn;
  let S = mul(matmul(qn, kn.transpose(0, 1)), 1 / o.temperature);
  if (o.maskSelf) S = maskedFill(S, kiln.toDType(matrix(R, (i, j) => +(i === j), 'float32'), 'int32'), -1e9);
  const W = matrix(R, (i, j) => (j === (i + half) % R ? 1 - o.selfWeight : 0) + (j === i ? o.selfWeight : 0), q.dtype as 'float64');
  return mean(neg(sum(mul(logSoftmax(S, -1), W), 1)));
}

function clipRef(img: Tensor, txt: Tensor, ls: Tensor): Tensor {
  const R = img.shape[0];
  const S = mul(matmul(normalize(img), normalize(txt).transpose(0, 1)), exp(ls));
  const I = matrix(R, (i, j) => +(i === j), img.dtype as 'float64');
  const a = mean(neg(sum(mul(logSoftmax(S, -1), I), 1)));
  const b = mean(neg(sum(mul(logSoftmax(S.transpose(0, 1), -1), I), 1)));
  return mul(kiln.add(a, b), 0.5);
}

function disslRef(t: Tensor, s: Tensor, tt: number, ts: number): Tensor {
  return mean(neg(sum(mul(softmax(mul(t, 1 / tt), -1), logSoftmax(mul(s, 1 / ts), -1)), 1)));
}

function meanEntropyRef(t: Tensor, tau: number): Tensor {
  const p = mean(softmax(mul(t, 1 / tau), -1), 0);
  return neg(sum(mul(p, log(p))));
}

let seed = 1;
function inputs(shapes: number[][], dtype: 'float32' | 'float64'): Tensor[] {
  kiln.manualSeed(seed++);
  return shapes.map((s) => kiln.randn(s, { dtype, requiresGrad: true }));
}

function close(t: any, a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  t.is(a.length, b.length, what);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) - rtol * Math.abs(b[i]);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  t.true(worst <= atol, `${what}: worst excess ${worst} at ${at}: ${a[at]} vs ${b[at]}`);
}

/** Runs fused and reference on the same inputs; compares loss and every gradient. */
function compare(t: any, shapes: number[][], dtype: 'float32' | 'float64', fused: (...x: Tensor[]) => Tensor, ref: (...x: Tensor[]) => Tensor, tol: [number, number]) {
  kiln.tidy(() => {
    const xs = inputs(shapes, dtype);
    const ys = xs.map((x) => kiln.fromTyped(x.dataSync().slice(), x.shape.slice(), { dtype, requiresGrad: true }));
    const a = fused(...xs), b = ref(...ys);
    close(t, a.dataSync(), b.dataSync(), tol[0], tol[1], 'loss');
    a.backward();
    b.backward();
    xs.forEach((x, i) => close(t, x.grad!.dataSync(), ys[i].grad!.dataSync(), tol[0], tol[1], `grad ${i}`));
  });
}

const F64: [number, number] = [1e-10, 1e-8];
const F32: [number, number] = [2e-5, 2e-4];

for (const dtype of ['float64', 'float32'] as const) {
  const tol = dtype === 'float64' ? F64 : F32;
  for (const [R, D] of [[6, 4], [130, 9], [600, 17]]) {
    test(`ntXent cosine ${dtype} [${R}, ${D}] vs reference`, (t) =>
      compare(t, [[R, D]], dtype, (z) => kiln.ntXent(z, { temperature: 0.2 }),
        (z) => infoNCERef(z, null, { temperature: 0.2, cosine: true, maskSelf: true, selfWeight: 0 }), tol));
  }
  test(`ntXent dot ${dtype} vs reference`, (t) =>
    compare(t, [[300, 8]], dtype, (z) => kiln.ntXent(z, { temperature: 2, similarity: 'dot' }),
      (z) => infoNCERef(z, null, { temperature: 2, cosine: false, maskSelf: true, selfWeight: 0 }), tol));
  test(`cisslLoss ${dtype} vs reference (self kept, soft targets 0.5/0.5)`, (t) =>
    compare(t, [[520, 12], [520, 12]], dtype, (s, te) => kiln.cisslLoss(s, te, { temperature: 0.3 }),
      (s, te) => infoNCERef(s, te, { temperature: 0.3, cosine: true, maskSelf: false, selfWeight: 0.5 }), tol));
  test(`infoNCE shared keys, self kept ${dtype} vs reference`, (t) =>
    compare(t, [[70, 5]], dtype, (z) => kiln.infoNCE(z, null, { temperature: 0.5, maskSelf: false, selfWeight: 0.25 }),
      (z) => infoNCERef(z, null, { temperature: 0.5, cosine: true, maskSelf: false, selfWeight: 0.25 }), tol));
  test(`clipLoss ${dtype} vs reference, logit-scale gradient included`, (t) =>
    compare(t, [[300, 10], [300, 10], []], dtype, (a, b, s) => kiln.clipLoss(a, b, s), (a, b, s) => clipRef(a, b, s), tol));
  test(`disslCrossEntropy ${dtype} vs reference`, (t) =>
    compare(t, [[37, 11], [37, 11]], dtype, (a, b) => kiln.disslCrossEntropy(a, b, { teacherTemperature: 0.5, studentTemperature: 2 }),
      (a, b) => disslRef(a, b, 0.5, 2), tol));
  test(`meanEntropy ${dtype} vs reference`, (t) =>
    compare(t, [[150, 13]], dtype, (a) => kiln.meanEntropy(a, { temperature: 0.7 }), (a) => meanEntropyRef(a, 0.7), tol));
}

test('reductions sum and none agree with mean', (t) => {
  kiln.manualSeed(3);
  const z = kiln.randn([10, 4], { dtype: 'float64' });
  const m = kiln.ntXent(z).item(), s = kiln.ntXent(z, { reduction: 'sum' }).item();
  const rows = kiln.ntXent(z, { reduction: 'none' });
  t.deepEqual(rows.shape, [10]);
  t.true(Math.abs(s - 10 * m) < 1e-10);
  t.true(Math.abs(rows.sum().item() - s) < 1e-10);
});

const gc = (t: any, f: (...x: Tensor[]) => Tensor, shapes: number[][]) => {
  const xs = inputs(shapes, 'float64');
  const r = kiln.gradcheck(f, xs, { atol: 1e-6, rtol: 1e-4 });
  t.true(r.ok, JSON.stringify(r.worst));
};
test('gradcheck ntXent (cosine and dot)', (t) => {
  gc(t, (z) => kiln.ntXent(z, { temperature: 0.3 }), [[6, 3]]);
  gc(t, (z) => kiln.ntXent(z, { temperature: 3, similarity: 'dot' }), [[4, 3]]);
});
test('gradcheck cisslLoss', (t) => gc(t, (a, b) => kiln.cisslLoss(a, b, { temperature: 0.4 }), [[4, 3], [4, 3]]));
test('gradcheck clipLoss incl. logit scale', (t) => gc(t, (a, b, s) => kiln.clipLoss(a, b, s), [[5, 3], [5, 3], []]));
test('gradcheck disslCrossEntropy and meanEntropy', (t) => {
  gc(t, (a, b) => kiln.disslCrossEntropy(a, b, { teacherTemperature: 0.7, studentTemperature: 1.3, reduction: 'sum' }), [[3, 4], [3, 4]]);
  gc(t, (a) => kiln.meanEntropy(a, { temperature: 0.8 }), [[4, 5]]);
});

test('same result for any thread count', (t) => {
  kiln.manualSeed(9);
  const z = kiln.randn([400, 16], { requiresGrad: true });
  const before = kiln.getNumThreads();
  const run = () => {
    const l = kiln.ntXent(z);
    l.backward();
    const out = [l.item(), ...z.grad!.dataSync()];
    z.grad!.dispose();
    z.grad = null;
    return out;
  };
  kiln.setNumThreads(1);
  const a = run();
  kiln.setNumThreads(Math.max(2, before));
  const b = run();
  kiln.setNumThreads(before);
  t.deepEqual(a, b);
});

test('bad input is a KilnError with a code', (t) => {
  const z = kiln.randn([8, 4]);
  const code = (f: () => unknown, c: kiln.KilnErrorCode) => t.is(t.throws(f, { instanceOf: kiln.KilnError })!.code, c);
  code(() => kiln.ntXent(z, { temperature: 0 }), 'INVALID_ARGUMENT');
  code(() => kiln.ntXent(z, { temperature: -1 }), 'INVALID_ARGUMENT');
  code(() => kiln.ntXent(z, { temperature: NaN }), 'INVALID_ARGUMENT');
  code(() => kiln.ntXent(kiln.randn([7, 4])), 'SHAPE_MISMATCH');
  code(() => kiln.cisslLoss(z, kiln.randn([6, 4])), 'SHAPE_MISMATCH');
  code(() => kiln.clipLoss(z, kiln.randn([8, 5]), kiln.zeros([])), 'SHAPE_MISMATCH');
  code(() => kiln.clipLoss(z, z, kiln.zeros([2])), 'SHAPE_MISMATCH');
  code(() => kiln.clipLoss(z, z, kiln.full([], Infinity)), 'INVALID_ARGUMENT');
  code(() => kiln.cisslLoss(z, kiln.randn([8, 4], { dtype: 'float64' })), 'DTYPE_MISMATCH');
  code(() => kiln.disslCrossEntropy(kiln.randn([3, 4]), kiln.randn([2, 4])), 'SHAPE_MISMATCH');
  code(() => kiln.disslCrossEntropy(kiln.randn([3, 4]), kiln.randn([3, 4]), { studentTemperature: 0 }), 'INVALID_ARGUMENT');
  code(() => kiln.meanEntropy(kiln.randn([3, 4]), { temperature: -2 }), 'INVALID_ARGUMENT');
  code(() => kiln.infoNCE(z, null, { maskSelf: true, selfWeight: 0.5 }), 'INVALID_ARGUMENT');
  // Wrong types and edge values (were TypeErrors, silent, or refused after allocating).
  code(() => kiln.infoNCE(z, null, { maskSelf: false, selfWeight: 1n as never }), 'INVALID_ARGUMENT');
  code(() => kiln.infoNCE(z, 0 as never), 'INVALID_ARGUMENT');
  code(() => kiln.ntXent(z, { temperature: 5e-324 }), 'INVALID_ARGUMENT');
  code(() => kiln.disslCrossEntropy(kiln.randn([0, 4]), kiln.randn([0, 4])), 'SHAPE_MISMATCH');
  t.true(Number.isFinite(kiln.meanEntropy(kiln.randn([3, 4]), null as never).item()), 'null options mean none');
  const a = kiln.randn([8, 4], { requiresGrad: true }), b = kiln.randn([8, 4]);
  const l = kiln.clipLoss(a, b, kiln.full([], 1));
  a.dispose();
  t.throws(() => l.backward(), { instanceOf: kiln.KilnError, message: /^clipLoss backward: queries \[8, 4\] was disposed/ });
});

test('huge logits stay finite (the max term is not an FMA\'s rounding error); cosine rows past float32\'s squares; NaN is not hidden', (t) => {
  kiln.tidy(() => {
    kiln.manualSeed(2);
    const a = kiln.randn([8, 16]), b = kiln.randn([8, 16]);
    const a64 = a.to('float64'), b64 = b.to('float64');
    // logit scale e^25: |logits| ~ 1e11, where the float32 logsumexp was -inf / NaN.
    const f32 = kiln.clipLoss(a, b, kiln.full([], 25)).item(), f64 = kiln.clipLoss(a64, b64, kiln.full([], 25, { dtype: 'float64' })).item();
    t.true(Number.isFinite(f32) && Math.abs(f32 - f64) <= 1e-6 * Math.abs(f64), `clipLoss f32 ${f32} vs f64 ${f64}`);
    const big = kiln.mul(a, 3e8), big64 = big.to('float64');
    const o = { teacherTemperature: 0.1, studentTemperature: 0.1 };
    const d32 = kiln.disslCrossEntropy(big, kiln.mul(b, 3e8), o).item(), d64 = kiln.disslCrossEntropy(big64, kiln.mul(b64, 3e8), o).item();
    t.true(Number.isFinite(d32) && Math.abs(d32 - d64) <= 1e-6 * Math.abs(d64), `dissl f32 ${d32} vs f64 ${d64}`);
    const h32 = kiln.meanEntropy(big, { temperature: 0.1 }).item(), h64 = kiln.meanEntropy(big64, { temperature: 0.1 }).item();
    t.true(Math.abs(h32 - h64) < 1e-5, `meanEntropy f32 ${h32} vs f64 ${h64}`);
    // Cosine similarity does not depend on the rows' scale, even past float32's largest square.
    const z = kiln.randn([6, 8]);
    const want = Array.from(kiln.ntXent(z, { reduction: 'none' }).dataSync());
    const got = Array.from(kiln.ntXent(kiln.mul(z, 1e20), { reduction: 'none' }).dataSync());
    got.forEach((g, i) => t.true(Math.abs(g - want[i]) < 1e-5, `row ${i}: ${g} vs ${want[i]}`));
    // A NaN logit makes the batch-mean entropy NaN (it was skipped, giving a plausible number).
    const nan = kiln.tensor([[NaN, 0, 1], [0, 1, 2]]);
    t.true(Number.isNaN(kiln.meanEntropy(nan).item()));
  });
});

test('16k views: forward and backward in linear memory', (t) => {
  // The [16384, 16384] similarity matrix alone would be 1 GiB in float32.
  kiln.manualSeed(11);
  const z = kiln.randn([16384, 16], { requiresGrad: true });
  const peak0 = process.resourceUsage().maxRSS * 1024, rss0 = process.memoryUsage().rss;
  const l = kiln.ntXent(z, { temperature: 0.1 });
  l.backward();
  const peak = process.resourceUsage().maxRSS * 1024;
  t.true(Number.isFinite(l.item()));
  t.true(z.grad!.dataSync().every(Number.isFinite));
  const grew = (peak - Math.max(peak0, rss0)) / 2 ** 20;
  t.log(`rss growth ${grew.toFixed(1)} MiB`);
  t.true(grew < 200, `rss grew by ${grew.toFixed(1)} MiB`);
});

// The CUDA kernels against the CPU ones (which the tests above hold to the references): every loss,
// forward and backward, float32 and float64, with the similarity matrix in one band and then cut into
// bands of 37 rows (KILN_CUDA_BAND_ROWS; the last band short), so each band's rows, the dk sum
// over bands and the transposed term of a shared matrix are checked.
const cudaCases: [string, number[][], (...x: Tensor[]) => Tensor][] = [
  ['ntXent cosine', [[130, 9]], (z) => kiln.ntXent(z, { temperature: 0.2 })],
  ['ntXent dot', [[100, 8]], (z) => kiln.ntXent(z, { temperature: 2, similarity: 'dot' })],
  ['cisslLoss', [[90, 12], [90, 12]], (s, te) => kiln.cisslLoss(s, te, { temperature: 0.3 })],
  ['infoNCE shared, self kept', [[70, 5]], (z) => kiln.infoNCE(z, null, { temperature: 0.5, maskSelf: false, selfWeight: 0.25 })],
  ['infoNCE two towers, dot', [[76, 6], [76, 6]], (q, k) => kiln.infoNCE(q, k, { temperature: 3, similarity: 'dot', maskSelf: false })],
  ['clipLoss', [[80, 10], [80, 10], []], (a, b, s) => kiln.clipLoss(a, b, s)],
  ['disslCrossEntropy', [[60, 40], [60, 40]], (a, b) => kiln.disslCrossEntropy(a, b, { teacherTemperature: 0.5, studentTemperature: 2 })],
  ['meanEntropy', [[150, 13]], (a) => kiln.meanEntropy(a, { temperature: 0.7 })],
];
for (const dtype of ['float32', 'float64'] as const) {
  const title = `CUDA matches the CPU: every contrastive loss, forward and backward, one band and bands of 37 rows (${dtype})`;
  if (!kiln.cuda.isAvailable()) {
    test.skip(`${title} (skipped: no CUDA device)`, () => {});
    continue;
  }
  test(title, (t) => {
    const tol = dtype === 'float64' ? F64 : F32;
    for (const band of [undefined, '37']) {
      if (band) process.env.KILN_CUDA_BAND_ROWS = band;
      else delete process.env.KILN_CUDA_BAND_ROWS;
      try {
        for (const [name, shapes, f] of cudaCases)
          kiln.tidy(() => {
            const host = inputs(shapes, dtype);
            const run = (device: 'cpu' | 'cuda') => {
              const xs = host.map((x) => {
                const y = kiln.detach(device === 'cpu' ? x : x.to('cuda'));
                y.requiresGrad = true;
                return y;
              });
              const l = f(...xs);
              l.backward();
              return [l, ...xs.map((x) => x.grad!)].map((x) => x.to('cpu').dataSync());
            };
            const cpu = run('cpu'), gpu = run('cuda');
            gpu.forEach((g, i) => close(t, g, cpu[i], tol[0], tol[1], `${name} band ${band ?? 'default'} ${i === 0 ? 'loss' : `grad ${i - 1}`}`));
          });
      } finally {
        delete process.env.KILN_CUDA_BAND_ROWS;
      }
    }
  });
}
