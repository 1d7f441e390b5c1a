// The core CUDA kernels (kernels/cuda/{reduce,topk,softmax,layernorm,embedding,random,optim}.cu)
// against the CPU kernels on the same inputs, at sizes that reach the paths the small checkOp shapes
// do not (block-per-row rows, split chunks, radix select, vector loads with tails), plus what only a
// GPU run can show: Philox on cuda gives the CPU's values for the same seed and offset, fused
// optimizers track the CPU over several steps, and bad indices on cuda are KilnErrors, not faults.
// Without a GPU every test here is skipped with the reason.
import test, { type ExecutionContext } from 'ava';
import * as kiln from '../src/index.js';
import type { DType, Tensor } from '../src/index.js';
import { A, N } from '../src/native.js';
import { prodReduce } from '../src/ops/reduce.js';
import { arg } from '../src/ops/util.js';
import { assertClose, cudaReason, prng, type Tol } from './helpers/checkop.js';

const gpu = kiln.cuda.isAvailable();
const cudaTest = (title: string, body: (t: ExecutionContext) => void) =>
  gpu ? test(`${title} [cuda]`, body) : test.skip(`${title} [cuda] (skipped: ${cudaReason()})`, () => {});

const F32: Tol = { atol: 1e-5, rtol: 1e-5 };
const F64: Tol = { atol: 1e-12, rtol: 1e-12 };
const tolOf = (d: DType) => (d === 'float64' ? F64 : F32);

/** Values from a seeded PRNG: normals; with `levels`, rounded to 1/levels so ties happen; every `nanEvery`-th a NaN. */
function data(n: number, seed: number, d: DType = 'float32', levels = 0, nanEvery = 0): Tensor {
  const r = prng(seed);
  const v = Array.from({ length: n }, (_, i) => {
    const x = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    if (nanEvery && i % nanEvery === nanEvery - 1) return NaN;
    return levels ? Math.round(x * levels) / levels : x;
  });
  return kiln.tensor(d === 'float64' ? Float64Array.from(v) : d === 'int32' ? Int32Array.from(v.map((x) => Math.round(x * 5))) : Float32Array.from(v));
}

/** A fresh CPU leaf with x's values that requires grad. */
function leafOf(x: Tensor): Tensor {
  const l = x.clone();
  l.requiresGrad = true;
  return l;
}
const on = (x: Tensor, dev: 'cpu' | 'cuda') => (dev === 'cpu' ? x : x.to('cuda'));
const host = (x: Tensor) => Array.from(x.to('cpu').dataSync());

/** Runs f on a CPU input and on its cuda copy; returns both results on the CPU. */
function both(x: Tensor, f: (x: Tensor) => Tensor): [Tensor, Tensor] {
  const g = x.to('cuda');
  const onGpu = f(g);
  if (onGpu.device !== 'cuda') throw new Error(`output on ${onGpu.device}`);
  return [f(x), onGpu.to('cpu')];
}

function same(t: ExecutionContext, what: string, x: Tensor, f: (x: Tensor) => Tensor, tol?: Tol): void {
  kiln.tidy(() => {
    const [c, g] = both(x, f);
    t.deepEqual(g.shape, c.shape, `${what}: shape`);
    if (tol) assertClose(t, what, g.dataSync(), c.dataSync(), tol);
    else t.deepEqual(Array.from(g.dataSync()), Array.from(c.dataSync()), `${what}: exact`);
  });
}

cudaTest('reductions at row, split-row, column and split-column sizes match the CPU', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      const tol = tolOf(d);
      // [outer, r] over r: warp rows (r <= 1024), block rows, and few rows split into chunks.
      for (const [outer, r] of [[37, 100], [5, 3001], [2, 100003], [1, 1 << 20]]) {
        const x = data(outer * r, outer + r, d).reshape([outer, r]);
        same(t, `sum ${d} [${outer}, ${r}]`, x, (v) => kiln.sum(v, 1), tol);
        same(t, `mean ${d} [${outer}, ${r}]`, x, (v) => kiln.mean(v, 1), tol);
        same(t, `max ${d} [${outer}, ${r}]`, x, (v) => kiln.max(v, 1));
        same(t, `min ${d} [${outer}, ${r}]`, x, (v) => kiln.min(v, 1));
        same(t, `logsumexp ${d} [${outer}, ${r}]`, x, (v) => kiln.logsumexp(v, 1), tol);
        same(t, `argmax ${d} [${outer}, ${r}]`, data(outer * r, r, d, 2).reshape([outer, r]), (v) => kiln.argmax(v, 1));
        same(t, `argmin ${d} [${outer}, ${r}]`, data(outer * r, r, d, 2).reshape([outer, r]), (v) => kiln.argmin(v, 1));
      }
      // Columns: [outer, r, inner] over r, few columns (split over r) and many.
      for (const [outer, r, inner] of [[3, 5000, 7], [1, 20000, 33], [64, 9, 300]]) {
        const x = data(outer * r * inner, r + inner, d).reshape([outer, r, inner]);
        same(t, `sum ${d} [${outer}, ${r}, ${inner}]`, x, (v) => kiln.sum(v, 1), tol);
        same(t, `max ${d} [${outer}, ${r}, ${inner}]`, x, (v) => kiln.max(v, 1));
        same(t, `logsumexp ${d} [${outer}, ${r}, ${inner}]`, x, (v) => kiln.logsumexp(v, 1), tol);
        same(t, `argmin ${d} [${outer}, ${r}, ${inner}]`, data(outer * r * inner, 3, d, 1).reshape([outer, r, inner]), (v) => kiln.argmin(v, 1));
      }
      const p = kiln.tensor(d === 'float64' ? Float64Array.from({ length: 3000 }, (_, i) => 1 + ((i % 7) - 3) * 1e-4) : Float32Array.from({ length: 3000 }, (_, i) => 1 + ((i % 7) - 3) * 1e-4));
      same(t, `prod ${d}`, p.reshape([3, 1000]), (v) => prodReduce(v, 1), tol);
    }
    // int32 sum (wrapping) / max / min, rows and columns.
    const xi = data(4 * 5000, 9, 'int32').reshape([4, 5000]);
    same(t, 'int32 sum rows', xi, (v) => kiln.sum(v, 1));
    same(t, 'int32 max columns', xi, (v) => kiln.max(v, 0));
    same(t, 'int32 min columns', xi, (v) => kiln.min(v, 0));
    const big = kiln.full([3000], 2 ** 30, 'int32');
    same(t, 'int32 sum wraps like int32', big, (v) => kiln.sum(v));
  });
});

cudaTest('reductions keep the CPU edge cases: NaN, infinities, empty rows, first index on ties', (t) => {
  kiln.tidy(() => {
    const v = [1, NaN, 3, -Infinity, -Infinity, -Infinity, 2, 2, Infinity, 5, 5, 1];
    const x = kiln.tensor(Float32Array.from(v), { shape: [4, 3] });
    for (const [name, f] of [
      ['sum', (a: Tensor) => kiln.sum(a, 1)], ['max', (a: Tensor) => kiln.max(a, 1)], ['min', (a: Tensor) => kiln.min(a, 1)],
      ['logsumexp', (a: Tensor) => kiln.logsumexp(a, 1)], ['argmax', (a: Tensor) => kiln.argmax(a, 1)],
      ['argmin', (a: Tensor) => kiln.argmin(a, 1)],
    ] as const)
      same(t, `${name} with NaN/inf`, x, f, { atol: 1e-6, rtol: 1e-6 });
    same(t, 'mean over an empty axis', kiln.zeros([3, 0]), (a) => kiln.mean(a, 1));
  });
});

cudaTest('cumsum (forward and reverse) over rows, long rows and split columns matches the CPU', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      for (const shape of [[5, 30], [3, 777], [2, 10000], [1, 300000], [4000, 3, 2], [2, 50000, 3]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = data(n, n, d).reshape(shape);
        // Partial sums cross zero: the tolerance is absolute at the scale of the summands.
        const tol = d === 'float64' ? { atol: 1e-9, rtol: 1e-12 } : { atol: 1e-4, rtol: 1e-5 };
        same(t, `cumsum ${d} ${shape}`, x, (v) => kiln.cumsum(v, 1), tol);
        same(t, `reverse cumsum ${d} ${shape}`, x, (v) => kiln.cumsum(v, 1, true), tol);
        same(t, `cumsum ${d} ${shape} axis 0`, x, (v) => kiln.cumsum(v, 0), tol);
      }
    }
  });
});

cudaTest('topk: sorted values and indices equal the CPU (ties by index, NaN largest) for short rows, radix select and k > 2048', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      for (const [rows, n, k] of [[7, 10, 3], [3, 2048, 2048], [4, 5000, 17], [2, 30000, 1000], [2, 10000, 3000], [1, 4099, 4099]]) {
        const x = data(rows * n, n + k, d, 4, 97).reshape([rows, n]);  // few distinct values (ties) and some NaNs
        for (const largest of [true, false]) {
          kiln.tidy(() => {
            const c = kiln.topk(x, k, largest);
            const g = kiln.topk(x.to('cuda'), k, largest);
            t.is(g.values.device, 'cuda');
            t.deepEqual(Array.from(g.indices.to('cpu').dataSync()), Array.from(c.indices.dataSync()), `topk ${d} [${rows}, ${n}] k ${k} ${largest}: indices`);
            t.deepEqual(Array.from(g.values.to('cpu').dataSync()), Array.from(c.values.dataSync()), `topk ${d} [${rows}, ${n}] k ${k} ${largest}: values`);
          });
        }
      }
    }
    const special = kiln.tensor(Float32Array.from([0, -0, NaN, 1, Infinity, -Infinity, NaN, 1, -0, 2, 0, -Infinity]), { shape: [2, 6] });
    for (const largest of [true, false]) {
      const c = kiln.topk(special, 6, largest), g = kiln.topk(special.to('cuda'), 6, largest);
      t.deepEqual(Array.from(g.indices.to('cpu').dataSync()), Array.from(c.indices.dataSync()), `special values, largest ${largest}`);
    }
  });
});

cudaTest('softmax, log-softmax, layer norm and cross entropy at warp and block row lengths match the CPU, gradients too', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      const tol = d === 'float64' ? F64 : { atol: 1e-6, rtol: 1e-4 };
      for (const [rows, n] of [[33, 7], [9, 1024], [5, 1030], [3, 5000], [2, 20001]]) {
        const xc = data(rows * n, rows * n, d).reshape([rows, n]);
        const w = data(rows * n, 7, d).reshape([rows, n]);
        for (const [name, f] of [['softmax', kiln.softmax], ['logSoftmax', kiln.logSoftmax]] as const) {
          const run = (dev: 'cpu' | 'cuda') => kiln.tidy(() => {
            const leaf = leafOf(xc);
            const y = f(on(leaf, dev));
            y.mul(on(w, dev)).sum().backward();
            return [...host(y), ...host(leaf.grad!)];
          });
          assertClose(t, `${name} ${d} [${rows}, ${n}] value and gradient`, run('cuda'), run('cpu'), tol);
        }
        const gamma = data(n, n + 1, d), beta = data(n, n + 2, d);
        const lnRun = (dev: 'cpu' | 'cuda') => kiln.tidy(() => {
          const leaves = [xc, gamma, beta].map(leafOf);
          const y = kiln.layerNorm(on(leaves[0], dev), n, on(leaves[1], dev), on(leaves[2], dev));
          y.mul(on(w, dev)).sum().backward();
          return [...host(y), ...leaves.flatMap((l) => host(l.grad!))];
        });
        assertClose(t, `layerNorm ${d} [${rows}, ${n}] value and gradients`, lnRun('cuda'), lnRun('cpu'),
          d === 'float64' ? { atol: 1e-10, rtol: 1e-10 } : { atol: 1e-4, rtol: 1e-4 });
        const r = prng(n);
        const picks = Array.from({ length: rows }, () => Math.floor(r() * n));
        const rowW = w.sum(1);
        for (const opts of [{}, { labelSmoothing: 0.1 }, { reduction: 'none' as const }, { reduction: 'sum' as const, ignoreIndex: 0 }]) {
          // Row 1 is ignored (the default ignore index -100, or 0 where that is the ignore index).
          const tg = kiln.tensor(Int32Array.from(picks, (v, i) => (i === 1 ? opts.ignoreIndex ?? -100 : v)));
          const ceRun = (dev: 'cpu' | 'cuda') => kiln.tidy(() => {
            const leaf = leafOf(xc);
            const loss = kiln.crossEntropy(on(leaf, dev), on(tg, dev), opts);
            (loss.ndim ? loss.mul(on(rowW, dev)).sum() : loss).backward();
            return [...host(loss), ...host(leaf.grad!)];
          });
          assertClose(t, `crossEntropy ${d} [${rows}, ${n}] ${JSON.stringify(opts)}`, ceRun('cuda'), ceRun('cpu'), tol);
        }
      }
    }
    // Edge rows: all -inf, a NaN, a +inf.
    const e = kiln.tensor(Float32Array.from([-Infinity, -Infinity, -Infinity, 1, NaN, 2, 1, Infinity, 0]), { shape: [3, 3] });
    same(t, 'softmax edge rows', e, (v) => kiln.softmax(v), { atol: 0, rtol: 0 });
    same(t, 'logSoftmax edge rows', e, (v) => kiln.logSoftmax(v), { atol: 0, rtol: 0 });
  });
});

cudaTest('embedding forward and backward (repeated indices) are bit-equal to the CPU', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      for (const [V, D, n] of [[50, 16, 300], [7, 5, 1000], [1000, 64, 4099], [3, 1, 10]]) {
        const w = data(V * D, V + D, d).reshape([V, D]);
        const r = prng(n);
        const idx = kiln.tensor(Int32Array.from({ length: n }, () => Math.floor(r() * r() * V)));  // skewed: many repeats
        const g = data(n * D, n, d).reshape([n, D]);
        const run = (dev: 'cpu' | 'cuda') => kiln.tidy(() => {
          const leaf = leafOf(w);
          const out = kiln.embedding(on(leaf, dev), on(idx, dev));
          out.mul(on(g, dev)).sum().backward();
          return [host(out), host(leaf.grad!)];
        });
        const [cf, cb] = run('cpu'), [gf, gb] = run('cuda');
        t.deepEqual(gf, cf, `embedding ${d} [${V}, ${D}] n ${n}: forward`);
        t.deepEqual(gb, cb, `embedding ${d} [${V}, ${D}] n ${n}: backward`);
      }
    }
  });
});

cudaTest('an out-of-range index on cuda is a KilnError (embedding, crossEntropy, oneHot), and the GPU stays usable', (t) => {
  kiln.tidy(() => {
    const w = kiln.ones([10, 4], { device: 'cuda' });
    for (const bad of [10, -1, 2147483647]) {
      const idx = kiln.tensor(Int32Array.from([1, 2, bad, 3, bad]), { device: 'cuda' });
      const e = t.throws(() => kiln.embedding(w, idx), { instanceOf: kiln.KilnError }) as kiln.KilnError;
      t.is(e.code, 'INDEX_OUT_OF_RANGE');
      t.regex(e.message, new RegExp(`index ${bad} at position 2`));
    }
    const logits = kiln.zeros([3, 5], { device: 'cuda' });
    const ce = t.throws(() => kiln.crossEntropy(logits, kiln.tensor(Int32Array.from([0, 5, -100]), { device: 'cuda' })), { instanceOf: kiln.KilnError }) as kiln.KilnError;
    t.is(ce.code, 'INDEX_OUT_OF_RANGE');
    const oh = t.throws(() => kiln.oneHot(kiln.tensor(Int32Array.from([0, 7]), { device: 'cuda' }), 5), { instanceOf: kiln.KilnError }) as kiln.KilnError;
    t.is(oh.code, 'INDEX_OUT_OF_RANGE');
    // ignoreIndex is allowed; afterwards the device still computes.
    t.true(Number.isFinite(kiln.crossEntropy(logits, kiln.tensor(Int32Array.from([0, 4, -100]), { device: 'cuda' })).item()));
    t.deepEqual(Array.from(kiln.embedding(w, kiln.tensor(Int32Array.from([9]), { device: 'cuda' })).to('cpu').dataSync()), [1, 1, 1, 1]);
  });
});

cudaTest('operands on different devices are DEVICE_MISMATCH at the native layer', (t) => {
  kiln.tidy(() => {
    const x = kiln.ones([2, 3], { device: 'cuda' }), out = kiln.zeros([2, 3]);
    A[0] = 0;
    A[1] = 2;
    A[2] = 3;
    const e = t.throws(() => N.softmax(arg(4, x), undefined, arg(10, out)), { instanceOf: kiln.KilnError }) as kiln.KilnError;
    t.is(e.code, 'DEVICE_MISMATCH');
  });
});

// ---------------------------------------------------------------- Philox

/** Raw draw into a fresh tensor on `device`: kind 0 uniform, 1 normal, 2 randint, at any word offset. */
function rawDraw(kind: 0 | 1 | 2, n: number, dtype: DType, device: 'cpu' | 'cuda', seed: bigint, offset: number, a: number, b: number): number[] {
  return kiln.tidy(() => {
    const out = kiln.zeros([n], { dtype, device });
    A[0] = kind;
    A[1] = n;
    A[2] = Number(seed & 0xffffffffn);
    A[3] = Number(seed >> 32n);
    A[4] = offset;
    A[5] = a;
    A[6] = b;
    N.random(arg(7, out));
    return Array.from(out.to('cpu').dataSync());
  });
}

cudaTest('Philox on cuda equals the CPU for the same seed and offset (uniform, randint bit for bit; normal to the last ulp)', (t) => {
  for (const seed of [0n, 7n, 0xdeadbeefcafef00dn]) {
    for (const offset of [0, 1, 2, 3, 4, 1022, 4097]) {
      for (const n of [1, 2, 3, 5, 8, 1001, 65537]) {
        for (const d of ['float32', 'float64'] as DType[]) {
          t.deepEqual(rawDraw(0, n, d, 'cuda', seed, offset, -2, 3), rawDraw(0, n, d, 'cpu', seed, offset, -2, 3), `uniform ${d} seed ${seed} offset ${offset} n ${n}`);
          // Normals: last-ulp differences of the transform (an FMA-contracting CPU clone, libm vs
          // CUDA log/sin/cos), measured at the scale of mean + std * z.
          const gc = rawDraw(1, n, d, 'cuda', seed, offset, 0.5, 2), cc = rawDraw(1, n, d, 'cpu', seed, offset, 0.5, 2);
          let worst = 0;
          for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(gc[i] - cc[i]) / (0.5 + Math.abs(cc[i] - 0.5)));
          t.true(worst <= (d === 'float32' ? 4e-7 : 1e-14), `normal ${d} seed ${seed} offset ${offset} n ${n}: worst relative ${worst}`);
        }
        t.deepEqual(rawDraw(2, n, 'int32', 'cuda', seed, offset, -7, 1000), rawDraw(2, n, 'int32', 'cpu', seed, offset, -7, 1000), `randint seed ${seed} offset ${offset} n ${n}`);
      }
    }
  }
});

cudaTest('kiln.rand / randn / randint / dropout on cuda give the CPU values for the same seed', (t) => {
  kiln.tidy(() => {
    const draws = (device: 'cpu' | 'cuda') => {
      kiln.manualSeed(1234);
      const u = kiln.rand([3, 333], { device });
      const z = kiln.randn([1001], { device, dtype: 'float64' });
      const z32 = kiln.randn([77], { device, mean: 1, std: 3 });
      const i = kiln.randint(-5, 50, [100], { device });
      const x = kiln.ones([4000], { device });
      const dr = kiln.dropout(x, 0.3);
      return [u, z, z32, i, dr].map((v) => Array.from(v.to('cpu').dataSync()));
    };
    const c = draws('cpu'), g = draws('cuda');
    t.deepEqual(g[0], c[0], 'rand float32');
    assertClose(t, 'randn float64', g[1], c[1], { atol: 1e-14, rtol: 1e-14 });
    assertClose(t, 'randn float32 (mean 1, std 3)', g[2], c[2], { atol: 2e-6, rtol: 4e-7 });
    t.deepEqual(g[3], c[3], 'randint');
    t.deepEqual(g[4], c[4], 'dropout mask and scale');
    t.true(g[4].some((v) => v === 0) && g[4].some((v) => v !== 0), 'dropout dropped some and kept some');
  });
});

// ---------------------------------------------------------------- optimizers

function trajectory(device: 'cpu' | 'cuda', dtype: DType, make: (ps: Tensor[]) => kiln.optim.Optimizer<any>, clip = 0): number[] {
  const n = 1027;  // vector loads plus a scalar tail
  const init = data(n, 11, dtype);
  const p = device === 'cpu' ? init.clone() : init.to('cuda');
  p.requiresGrad = true;
  const c = data(n, 12, dtype);
  const cd = on(c, device);
  const o = make([p]);
  for (let i = 0; i < 6; i++) {
    o.zeroGrad();
    kiln.tidy(() => kiln.add(kiln.sum(p.mul(p).mul(cd)), kiln.sum(p.pow(3)).mul(0.1)).backward());
    if (clip) kiln.optim.clipGradNorm([p], clip);
    o.step();
  }
  const out = Array.from(p.to('cpu').dataSync());
  [init, p, c, cd].forEach((v) => v.dispose());
  return out;
}

cudaTest('fused AdamW, Adam, SGD (momentum, Nesterov) and clipping on cuda follow the CPU over six steps', (t) => {
  const { AdamW, Adam, SGD } = kiln.optim;
  const makers: [string, (ps: Tensor[]) => kiln.optim.Optimizer<any>, number][] = [
    ['AdamW', (ps) => new AdamW(ps, { lr: 0.05, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05 }), 0],
    ['Adam', (ps) => new Adam(ps, { lr: 0.05, weightDecay: 0.01 }), 0],
    ['SGD momentum', (ps) => new SGD(ps, { lr: 0.01, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }), 0],
    ['SGD Nesterov + clip', (ps) => new SGD(ps, { lr: 0.01, momentum: 0.9, nesterov: true }), 1],
    ['SGD plain', (ps) => new SGD(ps, { lr: 0.01 }), 0],
  ];
  for (const [name, make, clip] of makers)
    for (const d of ['float32', 'float64'] as DType[]) {
      const c = trajectory('cpu', d, make, clip), g = trajectory('cuda', d, make, clip);
      assertClose(t, `${name} ${d}`, g, c, d === 'float64' ? { atol: 1e-12, rtol: 1e-10 } : { atol: 1e-5, rtol: 1e-4 });
      const start = kiln.tidy(() => Array.from(data(1027, 11, d).dataSync()));
      t.true(c.filter((v, i) => v !== start[i]).length > 1000, `${name} ${d}: the parameters moved`);
    }
});

cudaTest('gradNorm, clipGradNorm scaling and EMA on cuda match the CPU', (t) => {
  kiln.tidy(() => {
    for (const d of ['float32', 'float64'] as DType[]) {
      const vals = data(100003, 5, d);
      const run = (dev: 'cpu' | 'cuda') => {
        const p = on(vals, dev).clone();
        p.requiresGrad = true;
        p.grad = on(vals.mul(3), dev).clone();
        const norm = kiln.optim.gradNorm([p]);
        const before = kiln.optim.clipGradNorm([p], 1);
        const g = host(p.grad!);
        p.grad!.dispose();
        return [norm, before, ...g];
      };
      const c = run('cpu'), g = run('cuda');
      t.true(c[0] > 10, 'the norm is above the clip limit');
      assertClose(t, `gradNorm / clip ${d}`, g, c, { atol: 1e-9, rtol: d === 'float64' ? 1e-12 : 1e-6 });
      // EMA through the raw addon: shadow = decay * shadow + (1 - decay) * p, three updates.
      const emaRun = (dev: 'cpu' | 'cuda') => {
        const s = on(vals, dev).clone(), p = on(data(100003, 6, d), dev);
        for (let i = 0; i < 3; i++) {
          A[0] = 100003;
          A[1] = 0.9;
          N.emaUpdate(arg(4, s), arg(7, p));
        }
        return host(s);
      };
      assertClose(t, `EMA ${d}`, emaRun('cuda'), emaRun('cpu'), d === 'float64' ? F64 : { atol: 1e-6, rtol: 1e-6 });
    }
  });
});
