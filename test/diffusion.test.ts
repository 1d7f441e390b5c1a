// Noise schedules against their formulas, and the fused diffusion kernels (q_sample, DDPM, DDIM,
// eps <-> x0, clamping to the nearest embedding row) against step-by-step float64 references.
import test from 'ava';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';

const { sqrtNoiseSchedule, linearNoiseSchedule, cosineNoiseSchedule, respace } = kiln.sched;
type NS = kiln.sched.NoiseSchedule;

const arr = (t: Tensor) => Array.from(t.dataSync());
function close(t: any, a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  t.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    if (!(Math.abs(a[i] - b[i]) <= atol + rtol * Math.abs(b[i]))) {
      t.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
      return;
    }
  t.pass();
}

test('sqrt schedule: alpha-bar follows 1 - sqrt(t/T + 1e-4), betas capped at 0.999', (t) => {
  const T = 2000;
  const s = sqrtNoiseSchedule(T);
  const f = (x: number) => 1 - Math.sqrt(x + 1e-4);
  t.is(s.T, T);
  for (const i of [0, 1, 10, 500, 1500, 1998]) {
    t.true(Math.abs(s.betas[i] - Math.min(1 - f((i + 1) / T) / f(i / T), 0.999)) < 1e-15, `beta ${i}`);
    // The betas telescope: abar after step i is f((i+1)/T) / f(0).
    t.true(Math.abs(s.alphasCumprod[i] - f((i + 1) / T) / f(0)) < 1e-12 * Math.max(1, 1 / s.alphasCumprod[i]), `abar ${i}`);
  }
  t.is(s.betas[T - 1], 0.999);
  t.true(s.betas.every((b) => b > 0 && b <= 0.999));
  t.true(Math.abs(s.alphasCumprod[0] - f(1 / T) / 0.99) < 1e-15);
});

test('linear and cosine schedules', (t) => {
  const l = linearNoiseSchedule(1000);
  t.true(Math.abs(l.betas[0] - 1e-4) < 1e-15 && Math.abs(l.betas[999] - 0.02) < 1e-15);
  const l100 = linearNoiseSchedule(100);
  t.true(Math.abs(l100.betas[0] - 1e-3) < 1e-15 && Math.abs(l100.betas[99] - 0.2) < 1e-15);
  const c = cosineNoiseSchedule(1000);
  const g = (x: number) => Math.cos(((x + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  for (const i of [0, 100, 900]) t.true(Math.abs(c.alphasCumprod[i] - g((i + 1) / 1000) / g(0)) < 1e-12);
  t.is(c.betas[999], 0.999);
  for (let i = 1; i < 1000; i++) t.true(c.alphasCumprod[i] < c.alphasCumprod[i - 1]);
  t.true(Math.abs(c.posteriorVariance[5] - (c.betas[5] * (1 - c.alphasCumprod[4])) / (1 - c.alphasCumprod[5])) < 1e-15);
});

test('respacing keeps alpha-bar at the kept steps', (t) => {
  const s = sqrtNoiseSchedule(1000);
  const r = respace(s, 50);
  t.is(r.T, 50);
  t.is(r.timesteps[0], 0);
  t.is(r.timesteps[49], 999);
  for (let i = 0; i < 50; i++) t.true(Math.abs(r.alphasCumprod[i] - s.alphasCumprod[r.timesteps[i]]) < 1e-12);
  const rr = respace(s, [999, 0, 500]);
  t.deepEqual(Array.from(rr.timesteps), [0, 500, 999]);
  t.true(Math.abs(rr.alphasCumprod[1] - s.alphasCumprod[500]) < 1e-12);
  t.is(t.throws(() => respace(s, 0), { instanceOf: kiln.KilnError })!.code, 'INVALID_ARGUMENT');
  t.is(t.throws(() => respace(s, [1000]), { instanceOf: kiln.KilnError })!.code, 'INDEX_OUT_OF_RANGE');
});

const sched = linearNoiseSchedule(100);

for (const dtype of ['float32', 'float64'] as const) {
  test(`qSample ${dtype}: noise equals kiln.randn at the same seed, x_t by the formula`, (t) => {
    const x0 = kiln.randn([4, 3, 5], { dtype });
    const ts = [0, 7, 50, 99];
    kiln.manualSeed(123);
    const { xt, noise } = kiln.qSample(x0, ts, sched);
    kiln.manualSeed(123);
    const z = kiln.randn([4, 3, 5], { dtype });
    t.deepEqual(arr(noise), arr(z), 'fused noise is bit-identical to randn');
    const xv = arr(x0), zv = arr(z);
    const want = xv.map((v, i) => {
      const ab = sched.alphasCumprod[ts[Math.floor(i / 15)]];
      return Math.sqrt(ab) * v + Math.sqrt(1 - ab) * zv[i];
    });
    close(t, arr(xt), want, dtype === 'float32' ? 1e-6 : 1e-14, 1e-6, 'xt');
    const after = kiln.randn([1], { dtype }).item();
    kiln.manualSeed(123);
    kiln.randn([4, 3, 5], { dtype });
    t.is(kiln.randn([1], { dtype }).item(), after, 'the stream advanced exactly as randn would');
  });
}

test('odd sizes and many chunks: noise still equals randn', (t) => {
  const x0 = kiln.zeros([3, 1777]);
  kiln.manualSeed(8);
  const { noise } = kiln.qSample(x0, 10, sched);
  kiln.manualSeed(8);
  t.deepEqual(arr(noise), arr(kiln.randn([3, 1777])));
});

// Step-by-step float64 references (improved-diffusion's formulas).
function x0Ref(s: NS, t: number, x: number, out: number, pred: 'eps' | 'x0') {
  return pred === 'x0' ? out : Math.sqrt(1 / s.alphasCumprod[t]) * x - Math.sqrt(1 / s.alphasCumprod[t] - 1) * out;
}
function ddpmRef(s: NS, ts: number[], x: number[], out: number[], z: number[], inner: number, pred: 'eps' | 'x0', clip: boolean) {
  return x.map((xv, i) => {
    const t = ts[Math.floor(i / inner)];
    let x0 = x0Ref(s, t, xv, out[i], pred);
    if (clip) x0 = Math.min(1, Math.max(-1, x0));
    const ab = s.alphasCumprod[t], abp = t > 0 ? s.alphasCumprod[t - 1] : 1, beta = s.betas[t];
    const mean = (beta * Math.sqrt(abp)) / (1 - ab) * x0 + ((1 - abp) * Math.sqrt(1 - beta)) / (1 - ab) * xv;
    const v = (beta * (1 - abp)) / (1 - ab);
    const logv = Math.log(t === 0 ? (s.betas[1] * (1 - s.alphasCumprod[0])) / (1 - s.alphasCumprod[1]) : v);
    return mean + (t > 0 ? Math.exp(0.5 * logv) * z[i] : 0);
  });
}
function ddimRef(s: NS, ts: number[], x: number[], out: number[], z: number[], inner: number, eta: number) {
  return x.map((xv, i) => {
    const t = ts[Math.floor(i / inner)];
    const ab = s.alphasCumprod[t], abp = t > 0 ? s.alphasCumprod[t - 1] : 1;
    const x0 = x0Ref(s, t, xv, out[i], 'eps');
    const eps = (xv / Math.sqrt(ab) - x0) / Math.sqrt(1 / ab - 1);
    const sigma = eta * Math.sqrt((1 - abp) / (1 - ab)) * Math.sqrt(1 - ab / abp);
    return Math.sqrt(abp) * x0 + Math.sqrt(1 - abp - sigma * sigma) * eps + (t > 0 ? sigma * z[i] : 0);
  });
}

for (const dtype of ['float64', 'float32'] as const) {
  const tol = dtype === 'float64' ? 1e-12 : 2e-5;
  test(`ddpmStep ${dtype} vs step-by-step reference (eps and x0 prediction, clip, t = 0 rows)`, (t) => {
    const ts = [0, 1, 42, 99, 0];
    const x = kiln.randn([5, 8], { dtype }), m = kiln.randn([5, 8], { dtype }), z = kiln.randn([5, 8], { dtype });
    for (const pred of ['eps', 'x0'] as const)
      for (const clip of [false, true]) {
        const r = kiln.ddpmStep(x, m, ts, sched, { prediction: pred, clip, noise: z });
        close(t, arr(r.prev), ddpmRef(sched, ts, arr(x), arr(m), arr(z), 8, pred, clip), tol, tol, `${pred} clip=${clip}`);
      }
    // With drawn noise: the t = 0 rows are the posterior mean exactly; the same seed repeats.
    kiln.manualSeed(77);
    const a = kiln.ddpmStep(x, m, ts, sched).prev;
    kiln.manualSeed(77);
    const b = kiln.ddpmStep(x, m, ts, sched).prev;
    t.deepEqual(arr(a), arr(b));
    kiln.manualSeed(77);
    const zz = kiln.randn([5, 8], { dtype });
    close(t, arr(a), ddpmRef(sched, ts, arr(x), arr(m), arr(zz), 8, 'eps', false), tol, tol, 'drawn noise = randn');
  });

  test(`ddimStep ${dtype} vs reference, eta 0 and 0.5`, (t) => {
    const s = respace(sqrtNoiseSchedule(1000), 20);
    const ts = [19, 10, 1, 0];
    const x = kiln.randn([4, 6], { dtype }), m = kiln.randn([4, 6], { dtype }), z = kiln.randn([4, 6], { dtype });
    for (const eta of [0, 0.5]) {
      const r = kiln.ddimStep(x, m, ts, s, { eta, noise: z });
      close(t, arr(r.prev), ddimRef(s, ts, arr(x), arr(m), arr(z), 6, eta), tol, tol, `eta ${eta}`);
    }
    const offset = kiln.getRngState().offset;
    kiln.ddimStep(x, m, ts, s);
    t.is(kiln.getRngState().offset, offset, 'eta 0 draws no noise');
  });
}

test('eps <-> x0 conversions invert each other and match the formulas', (t) => {
  const s = cosineNoiseSchedule(50);
  const ts = [3, 49, 0];
  const xt = kiln.randn([3, 4], { dtype: 'float64' }), eps = kiln.randn([3, 4], { dtype: 'float64' });
  const x0 = kiln.predictX0(xt, eps, ts, s);
  const want = arr(xt).map((v, i) => x0Ref(s, ts[Math.floor(i / 4)], v, arr(eps)[i], 'eps'));
  close(t, arr(x0), want, 1e-12, 1e-12, 'x0');
  close(t, arr(kiln.predictEps(xt, x0, ts, s)), arr(eps), 1e-9, 1e-9, 'eps round trip');
});

test('gradcheck qSample, predictX0, predictEps (float64)', (t) => {
  const s = sqrtNoiseSchedule(30);
  const z = kiln.randn([3, 2], { dtype: 'float64' });
  const mk = () => kiln.randn([3, 2], { dtype: 'float64' });
  const ts = [0, 15, 29];
  for (const [f, n] of [
    [(a: Tensor) => kiln.qSample(a, ts, s, { noise: z }).xt, 1],
    [(a: Tensor, b: Tensor) => kiln.predictX0(a, b, ts, s), 2],
    [(a: Tensor, b: Tensor) => kiln.predictEps(a, b, ts, s), 2],
  ] as const) {
    const r = kiln.gradcheck(f as (...x: Tensor[]) => Tensor, Array.from({ length: n }, mk), { atol: 1e-6, rtol: 1e-5 });
    t.true(r.ok, JSON.stringify(r.worst));
  }
});

test('nearestRows vs brute force; clampTo snaps x0 to embedding rows', (t) => {
  const E = kiln.randn([700, 6], { dtype: 'float64' }), x = kiln.randn([2, 65, 6], { dtype: 'float64' });
  const { indices, rows } = kiln.nearestRows(x, E);
  t.deepEqual(indices.shape, [2, 65]);
  const ev = arr(E), xv = arr(x), iv = arr(indices);
  for (let m = 0; m < 130; m++) {
    let best = Infinity, arg = -1;
    for (let v = 0; v < 700; v++) {
      let d = 0;
      for (let k = 0; k < 6; k++) d += (xv[m * 6 + k] - ev[v * 6 + k]) ** 2;
      if (d < best) (best = d), (arg = v);
    }
    if (iv[m] !== arg) return t.fail(`row ${m}: ${iv[m]} vs ${arg}`);
  }
  t.deepEqual(arr(rows).slice(0, 6), ev.slice(iv[0] * 6, iv[0] * 6 + 6));
  // A DDPM step with x0 prediction and clamping: its x0 is made of embedding rows.
  const xt = kiln.randn([2, 65, 6], { dtype: 'float64' });
  const { x0 } = kiln.ddpmStep(xt, x, [5, 9], sched, { prediction: 'x0', clampTo: E });
  t.deepEqual(arr(x0), arr(rows));
});

test('same numbers for any thread count', (t) => {
  const x = kiln.randn([64, 4000]), m = kiln.randn([64, 4000]);
  const before = kiln.getNumThreads();
  const run = (n: number) => {
    kiln.setNumThreads(n);
    kiln.manualSeed(5);
    return arr(kiln.ddpmStep(x, m, 50, sched).prev);
  };
  const a = run(1), b = run(Math.max(2, before));
  kiln.setNumThreads(before);
  t.deepEqual(a, b);
});

test('bad input is a KilnError with a code', (t) => {
  const x = kiln.randn([2, 3]), m = kiln.randn([2, 3]);
  const code = (f: () => unknown, c: kiln.KilnErrorCode) => t.is(t.throws(f, { instanceOf: kiln.KilnError })!.code, c);
  code(() => kiln.ddpmStep(x, m, 100, sched), 'INDEX_OUT_OF_RANGE');
  code(() => kiln.ddpmStep(x, m, -1, sched), 'INDEX_OUT_OF_RANGE');
  code(() => kiln.qSample(x, [1.5, 2], sched), 'INDEX_OUT_OF_RANGE');
  code(() => kiln.qSample(x, [1, 2, 3], sched), 'SHAPE_MISMATCH');
  code(() => kiln.ddimStep(x, kiln.randn([3, 3]), 1, sched), 'SHAPE_MISMATCH');
  code(() => kiln.ddimStep(x, m, 1, sched, { eta: -0.1 }), 'INVALID_ARGUMENT');
  code(() => kiln.ddpmStep(x, kiln.toDType(m, 'float64'), 1, sched), 'DTYPE_MISMATCH');
  code(() => kiln.nearestRows(x, kiln.randn([5, 4])), 'SHAPE_MISMATCH');
  code(() => kiln.ddpmStep(x, m, 1, sched, { clip: [1, -1] }), 'INVALID_ARGUMENT');
  code(() => sqrtNoiseSchedule(0), 'INVALID_ARGUMENT');
  code(() => kiln.qSample(x, kiln.tensor([1, 2]), sched), 'DTYPE_MISMATCH');
  // Wrong types are KilnErrors too (they were TypeErrors / RangeErrors).
  code(() => kiln.qSample(x, null as never, sched), 'INVALID_ARGUMENT');
  code(() => kiln.qSample(x, true as never, sched), 'INVALID_ARGUMENT');
  code(() => kiln.qSample(x, 1, { T: 10 } as never), 'INVALID_ARGUMENT');
  code(() => kiln.ddpmStep(x, m, 1, sched, { variance: 'bogus' as never }), 'INVALID_ARGUMENT');
  code(() => kiln.ddpmStep(x, m, 1, sched, { clip: 'yes' as never }), 'INVALID_ARGUMENT');
  code(() => kiln.ddpmStep(x, m, 1, sched, { clip: ['a', 'b'] as never }), 'INVALID_ARGUMENT');
  code(() => kiln.ddpmStep(x, m, 1, sched, { clampTo: kiln.randn([4, 5]) }), 'SHAPE_MISMATCH');
  code(() => kiln.nearestRows(kiln.randn([4, 0]), kiln.randn([5, 0])), 'SHAPE_MISMATCH');
  code(() => sqrtNoiseSchedule(2 ** 33), 'INVALID_ARGUMENT');
  code(() => sqrtNoiseSchedule(20000), 'INVALID_ARGUMENT');
  code(() => linearNoiseSchedule(10, null as never), 'INVALID_ARGUMENT');  // default betaEnd 20 / T > 1
  code(() => cosineNoiseSchedule(100, NaN), 'INVALID_ARGUMENT');
  code(() => respace(null as never, 5), 'INVALID_ARGUMENT');
  code(() => respace(sched, 10n as never), 'INVALID_ARGUMENT');
  code(() => kiln.sched.scheduleFromBetas(null as never), 'INVALID_ARGUMENT');
  t.regex(t.throws(() => linearNoiseSchedule(10))!.message, /linearNoiseSchedule: betaEnd = 2 for T = 10 .*give betaEnd/);
});

test('schedules whose alpha-bar reaches 0 or 1 are refused (the steps would be NaN); no leak on refused steps', (t) => {
  t.regex(t.throws(() => linearNoiseSchedule(10, { betaStart: 1e-20, betaEnd: 1e-20 }))!.message, /alpha-bar\[0\] = 1 is not strictly between 0 and 1/);
  t.throws(() => kiln.sched.scheduleFromBetas([0.5, 1]), { message: /beta\[1\] = 1 is not in \(0, 1\)/ });
  const x = kiln.randn([2, 3]), m = kiln.randn([2, 3]);
  const before = kiln.memory().tensors;
  for (const bad of [{ clampTo: kiln.randn([4, 5]) }, { clip: ['a', 'b'] as never }]) {
    const t0 = kiln.memory().tensors;
    t.throws(() => kiln.ddpmStep(x, m, 1, sched, bad));
    t.is(kiln.memory().tensors, t0, 'a refused step allocates nothing');
    if (bad.clampTo) bad.clampTo.dispose();
  }
  t.true(kiln.memory().tensors <= before);
  x.dispose();
  m.dispose();
});

test('nearestRows: exact in crowded float32 rows (|E|^2 - 2 <x, E> cancels there); a NaN row gets -1 and NaN', (t) => {
  kiln.tidy(() => {
    // 20 rows near (100, ..., 100), 0.01 apart: each query sits 0.002 from its row.
    const D = 16, V = 20;
    const e = new Float32Array(V * D), q = new Float32Array(V * D);
    for (let j = 0; j < V; j++) for (let k = 0; k < D; k++) {
      e[j * D + k] = 100 + 0.01 * j;
      q[j * D + k] = 100 + 0.01 * j + (k % 2 ? 0.002 : -0.002);
    }
    for (const dtype of ['float32', 'float64'] as const) {
      const E = kiln.fromTyped(e, [V, D], { dtype }), x = kiln.fromTyped(q, [V, D], { dtype });
      t.deepEqual(arr(kiln.nearestRows(x, E).indices), Array.from({ length: V }, (_, j) => j), dtype);
    }
    const E = kiln.randn([7, 3]);
    const x = kiln.tensor([[0, 0, 0], [NaN, 0, 1], [1, Infinity, 0]]);
    const r = kiln.nearestRows(x, E);
    t.deepEqual(arr(r.indices).slice(1), [-1, -1]);
    t.true(arr(r.rows).slice(3).every(Number.isNaN));
    // clampTo carries the NaN on: a NaN model output gives a NaN x0 and a NaN step, not a finite row.
    const xt = kiln.randn([2, 3]), out = kiln.tensor([[NaN, NaN, NaN], [0.1, 0.2, 0.3]]);
    const step = kiln.ddpmStep(xt, out, 3, sched, { clampTo: E, noise: kiln.zeros([2, 3]) });
    t.true(arr(step.x0).slice(0, 3).every(Number.isNaN) && arr(step.x0).slice(3).every(Number.isFinite));
  });
});

// The CUDA kernels against the CPU ones (held to the references above): q_sample with drawn noise (the
// same seed gives the same noise on both devices) and its gradient, DDPM steps (eps and x0 prediction,
// clipping, drawn and given noise, t = 0 rows), DDIM with eta 0 and 0.5, the eps <-> x0 conversions,
// the nearest-row search and Diffusion-LM's clamping to it; float32 and float64.
for (const dtype of ['float32', 'float64'] as const) {
  const title = `CUDA matches the CPU: qSample, ddpmStep, ddimStep, conversions, nearestRows and clampTo (${dtype})`;
  if (!kiln.cuda.isAvailable()) {
    test.skip(`${title} (skipped: no CUDA device)`, () => {});
    continue;
  }
  test(title, (t) => {
    const tol = dtype === 'float64' ? 1e-12 : 2e-5;
    const s = respace(sqrtNoiseSchedule(1000), 20);
    kiln.tidy(() => {
      const x = kiln.randn([6, 37], { dtype }), m = kiln.randn([6, 37], { dtype }), z = kiln.randn([6, 37], { dtype });
      const E = kiln.randn([50, 37], { dtype });
      const ts = [0, 1, 7, 19, 0, 12];
      const on = (d: 'cpu' | 'cuda', a: Tensor) => (d === 'cpu' ? a : a.to('cuda'));
      const both = (name: string, f: (d: 'cpu' | 'cuda') => Tensor[]) => {
        const [c, g] = (['cpu', 'cuda'] as const).map((d) => f(d).map((r) => arr(r.to('cpu'))));
        c.forEach((want, i) => close(t, g[i], want, tol, tol, `${name} output ${i}`));
      };
      both('qSample', (d) => {
        kiln.manualSeed(5);
        const x0 = kiln.detach(on(d, x));
        x0.requiresGrad = true;
        const r = kiln.qSample(x0, ts, s);
        kiln.sum(kiln.mul(r.xt, on(d, m))).backward();
        return [r.xt, r.noise, x0.grad!];
      });
      for (const prediction of ['eps', 'x0'] as const)
        for (const clip of [false, true]) {
          both(`ddpmStep ${prediction} clip ${clip} given noise`, (d) => {
            const r = kiln.ddpmStep(on(d, x), on(d, m), ts, s, { prediction, clip, noise: on(d, z) });
            return [r.prev, r.x0];
          });
          both(`ddpmStep ${prediction} clip ${clip} drawn noise`, (d) => {
            kiln.manualSeed(9);
            const r = kiln.ddpmStep(on(d, x), on(d, m), ts, s, { prediction, clip });
            return [r.prev, r.x0];
          });
        }
      for (const eta of [0, 0.5])
        both(`ddimStep eta ${eta}`, (d) => {
          kiln.manualSeed(3);
          const r = kiln.ddimStep(on(d, x), on(d, m), ts, s, { eta });
          return [r.prev, r.x0];
        });
      both('predictX0 / predictEps', (d) => [kiln.predictX0(on(d, x), on(d, m), ts, s), kiln.predictEps(on(d, x), on(d, m), ts, s)]);
      for (const band of [undefined, '4']) {
        if (band) process.env.KILN_CUDA_BAND_ROWS = band;  // the CUDA search scores 4 query rows at a time
        try {
          both(`nearestRows band ${band ?? 'default'}`, (d) => {
            const r = kiln.nearestRows(on(d, x), on(d, E));
            return [kiln.toDType(r.indices, dtype), r.rows];
          });
        } finally {
          delete process.env.KILN_CUDA_BAND_ROWS;
        }
      }
      both('ddpmStep clampTo', (d) => {
        const r = kiln.ddpmStep(on(d, x), on(d, m), ts, s, { clampTo: on(d, E), noise: on(d, z) });
        return [r.prev, r.x0];
      });
    });
  });
}
