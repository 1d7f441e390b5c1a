// Indexing and shape ops (src/ops/select.ts): forward against plain references on random shapes
// (0-d, 0-size dims, transposed and expanded inputs, every dtype), gradients by finite differences,
// sort's tie and NaN order, memory, the errors bad input gets, and the native sort / gather /
// scatter-add kernels called directly (strided operands, bad-index reports, refused arguments).
import test from 'ava';
import * as kiln from '../src/index.js';
import type { DType, Tensor } from '../src/index.js';
import { checkOp, prng } from './helpers/checkop.js';
import * as R from './helpers/reference.js';
import { A, N } from '../src/native.js';
import { arg } from '../src/ops/util.js';
import { numel, ravel, unravel, type Ref } from './helpers/reference.js';

// ---------------------------------------------------------------- references

const norm = (d: number, nd: number) => (d < 0 ? d + Math.max(nd, 1) : d);
const build = (shape: number[], f: (pos: number[]) => number): Ref => {
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = f(unravel(i, shape));
  return { data, shape: shape.slice() };
};
const at = (x: Ref, pos: number[]) => x.data[ravel(pos, x.shape)];

function refGather(x: Ref, dim: number, idx: Ref): Ref {
  const a = norm(dim, x.shape.length);
  return build(idx.shape, (p) => {
    const q = p.slice();
    if (q.length) q[a] = at(idx, p);
    return at(x, q);
  });
}
function refIndexSelect(x: Ref, dim: number, idx: Ref): Ref {
  const a = norm(dim, x.shape.length);
  if (!x.shape.length) return x;
  const shape = x.shape.slice();
  shape[a] = idx.data.length;
  return build(shape, (p) => at(x, p.map((v, d) => (d === a ? idx.data[v] : v))));
}
function refScatterAdd(x: Ref, dim: number, idx: Ref, src: Ref): Ref {
  const a = norm(dim, x.shape.length);
  const out = Float64Array.from(x.data);
  for (let i = 0; i < idx.data.length; i++) {
    const p = unravel(i, idx.shape);
    const q = p.slice();
    if (q.length) q[a] = idx.data[i];
    out[ravel(q, x.shape)] += at(src, p);
  }
  return { data: out, shape: x.shape.slice() };
}
/** Stable order, NaN largest: positions of a row sorted. */
function order(row: number[], descending: boolean): number[] {
  const key = (v: number) => (Number.isNaN(v) ? Infinity : v);
  return row.map((_, i) => i).sort((i, j) => {
    const vi = row[i], vj = row[j];
    if (Number.isNaN(vi) || Number.isNaN(vj)) {
      if (Number.isNaN(vi) && Number.isNaN(vj)) return i - j;
      return (Number.isNaN(vi) ? 1 : -1) * (descending ? -1 : 1);
    }
    const c = descending ? key(vj) - key(vi) : key(vi) - key(vj);
    return c !== 0 ? c : i - j;
  });
}
function refSort(x: Ref, dim: number, descending: boolean): { values: Ref; indices: Ref } {
  if (!x.shape.length) return { values: x, indices: R.scalar(0) };
  const a = norm(dim, x.shape.length);
  return {
    values: R.alongAxis(x, a, (row) => order(row, descending).map((i) => row[i])),
    indices: R.alongAxis(x, a, (row) => order(row, descending)),
  };
}
const refFlip = (x: Ref, dims: number[]): Ref => {
  const ds = dims.map((d) => norm(d, x.shape.length));
  return build(x.shape, (p) => at(x, p.map((v, d) => (ds.includes(d) ? x.shape[d] - 1 - v : v))));
};
function refRoll(x: Ref, shifts: number[], dims?: number[]): Ref {
  if (!dims) {
    const flat = R.reshape(x, [x.data.length]);
    return R.reshape(refRoll(flat, shifts, [0]), x.shape);
  }
  const total = x.shape.map(() => 0);
  dims.forEach((d, i) => (total[norm(d, x.shape.length)] += shifts[i]));
  return build(x.shape, (p) => at(x, p.map((v, d) => (((v - total[d]) % x.shape[d]) + x.shape[d]) % x.shape[d])));
}
const refTri = (x: Ref, k: number, lower: boolean): Ref => build(x.shape, (p) => {
  const off = p[p.length - 1] - p[p.length - 2];
  return (lower ? off <= k : off >= k) ? at(x, p) : 0;
});
function refRepeat(x: Ref, reps: number[]): Ref {
  const xs = [...Array(reps.length - x.shape.length).fill(1), ...x.shape];
  const xr = R.reshape(x, xs);
  return build(xs.map((n, d) => n * reps[d]), (p) => at(xr, p.map((v, d) => v % xs[d])));
}
function refTruth(x: Ref, isAny: boolean, dim?: number | number[], keep = false): Ref {
  const nd = x.shape.length;
  const axes = dim === undefined ? [...Array(nd).keys()] : (typeof dim === 'number' ? [dim] : dim).map((d) => norm(d, nd));
  const keepShape = x.shape.map((n, d) => (axes.includes(d) ? 1 : n));
  const res = new Float64Array(numel(keepShape)).fill(isAny ? 0 : 1);
  for (let i = 0; i < x.data.length; i++) {
    const p = unravel(i, x.shape).map((v, d) => (axes.includes(d) ? 0 : v));
    const o = ravel(p, keepShape);
    if (isAny && x.data[i] !== 0) res[o] = 1;
    if (!isAny && x.data[i] === 0) res[o] = 0;
  }
  return { data: res, shape: keep ? keepShape : x.shape.filter((_, d) => !axes.includes(d) || nd === 0) };
}

// ---------------------------------------------------------------- forward and gradient (checkOp)

const i32 = (ints: number[], shape: number[]) => ({ ints, shape });
const int = { grad: false, outDtype: () => 'int32' as DType };

checkOp('gather dim 1', [[3, 4], i32([0, 3, 3, 1, 2, 2, 0, 0, 1], [3, 3])], (x, i) => x.gather(1, i), (x, i) => refGather(x, 1, i));
checkOp('gather dim 0, index smaller than input', [[4, 3], i32([3, 0, 1, 3, 3, 2], [2, 3])], (x, i) => kiln.gather(x, 0, i), (x, i) => refGather(x, 0, i));
checkOp('gather dim -2 of 3-D, transposed input', [[4, 2, 3], { int: [0, 2], shape: [2, 4, 2] }], (x, i) => x.transpose(0, 2).gather(-2, i),
  (x, i) => refGather(R.transpose(x, 0, 2), 1, i));
checkOp('gather int32', [[3, 4], { int: [0, 3], shape: [3, 5] }], (x, i) => x.gather(0, i.narrow(1, 0, 4)), (x, i) => refGather(x, 0, R.narrow(i, 1, 0, 4)),
  { dtypes: ['int32'], grad: false });
checkOp('indexSelect dim 0 with repeats', [[4, 3], i32([2, 0, 2, 2, 3], [5])], (x, i) => x.indexSelect(0, i), (x, i) => refIndexSelect(x, 0, i));
checkOp('indexSelect dim -1 of a transposed 3-D input', [[2, 3, 4], i32([1, 1, 0], [3])], (x, i) => kiln.indexSelect(x.transpose(0, 2), -1, i),
  (x, i) => refIndexSelect(R.transpose(x, 0, 2), 2, i));
checkOp('scatterAdd dim 0, repeated targets', [[3, 4], i32([2, 2, 0, 1, 2, 0, 0, 1], [2, 4]), [2, 4]], (x, i, s) => x.scatterAdd(0, i, s),
  (x, i, s) => refScatterAdd(x, 0, i, s));
checkOp('scatterAdd dim 1, src larger than index', [[3, 4], i32([3, 3, 1, 0, 0, 0], [3, 2]), [3, 3]], (x, i, s) => kiln.scatterAdd(x, 1, i, s),
  (x, i, s) => refScatterAdd(x, 1, i, s));
checkOp('scatterAdd on transposed input and src', [[4, 3], i32([0, 2, 1, 1, 0, 3], [3, 2]), [2, 3]], (x, i, s) => x.T.scatterAdd(1, i, s.T),
  (x, i, s) => refScatterAdd(R.transpose(x), 1, i, R.transpose(s)));
checkOp('sort last dim', [[3, 5]], (x) => x.sort().values, (x) => refSort(x, -1, false).values);
checkOp('sort dim 0 descending', [[4, 3]], (x) => kiln.sort(x, 0, true).values, (x) => refSort(x, 0, true).values);
checkOp('sort middle dim of a transposed input', [[3, 4, 2]], (x) => x.transpose(0, 1).sort(1).values, (x) => refSort(R.transpose(x, 0, 1), 1, false).values);
checkOp('sort indices', [[3, 5]], (x) => x.sort(0, true).indices, (x) => refSort(x, 0, true).indices, int);
checkOp('argsort int32', [[4, 6]], (x) => x.argsort(1), (x) => refSort(x, 1, false).indices, { ...int, dtypes: ['int32'] });
checkOp('flip two dims', [[3, 4, 2]], (x) => x.flip(0, 2), (x) => refFlip(x, [0, 2]));
checkOp('flip of a transposed input', [[3, 4]], (x) => kiln.flip(x.T, [-1]), (x) => refFlip(R.transpose(x), [-1]));
checkOp('roll two dims', [[3, 4]], (x) => x.roll([1, -5], [0, 1]), (x) => refRoll(x, [1, -5], [0, 1]));
checkOp('roll flattened', [[3, 4]], (x) => kiln.roll(x.T, 5), (x) => refRoll(R.transpose(x), [5]));
checkOp('tril', [[4, 5]], (x) => x.tril(), (x) => refTri(x, 0, true));
checkOp('triu diagonal 1, batched', [[2, 3, 4]], (x) => x.triu(1), (x) => refTri(x, 1, false));
checkOp('tril diagonal -1 of a transposed input', [[5, 3]], (x) => kiln.tril(x.T, -1), (x) => refTri(R.transpose(x), -1, true));
checkOp('repeat with a new leading dim', [[2, 3]], (x) => x.repeat(2, 1, 3), (x) => refRepeat(x, [2, 1, 3]));
checkOp('repeat an expanded input', [[3, 1]], (x) => x.expand([3, 2]).repeat([2, 2]), (x) => refRepeat(R.zipN([x, R.ref(new Float64Array(6), [3, 2])], (a) => a), [2, 2]));
checkOp('chunk: sizes follow ceil(n / chunks)', [[7, 2]], (x) => kiln.concat(x.chunk(3).map((c, i) => c.mul(i + 1)), 0),
  (x) => build([7, 2], (p) => at(x, p) * (Math.floor(p[0] / 3) + 1)));
checkOp('any along dims', [{ shape: [3, 4], values: [0, 0, 1, 0, 0, 0, 0, 0, 2, 3, 4, 5] }], (x) => x.any(1), (x) => refTruth(x, true, 1), int);
checkOp('all keepdim', [{ shape: [3, 4], values: [0, 0, 1, 0, 0, 0, 0, 0, 2, 3, 4, 5] }], (x) => x.all(1, true), (x) => refTruth(x, false, 1, true), int);

// ---------------------------------------------------------------- random shapes against the references

type Case = { name: string; run: (x: Tensor, rng: () => number) => { got: Tensor; want: (xr: Ref) => Ref } };
const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const randInts = (rng: () => number, n: number, hi: number) => Array.from({ length: n }, () => Math.floor(rng() * hi));
const idxTensor = (vals: number[], shape: number[]) => kiln.tensor(Int32Array.from(vals), { shape });

const cases: Case[] = [
  { name: 'gather', run: (x, rng) => {
    const nd = x.ndim, a = nd ? Math.floor(rng() * nd) : 0;
    const shape = x.shape.map((n, d) => (d === a ? (n === 0 ? 0 : Math.floor(rng() * 4)) : Math.floor(rng() * (n + 1))));
    const ix = idxTensor(randInts(rng, numel(shape), nd ? x.shape[a] : 1), shape);
    return { got: x.gather(a - nd, ix), want: (xr) => refGather(xr, a, { data: Float64Array.from(ix.dataSync()), shape: ix.shape }) };
  } },
  { name: 'indexSelect', run: (x, rng) => {
    const a = x.ndim ? Math.floor(rng() * x.ndim) : 0, n = x.ndim ? x.shape[a] : 1;
    const k = n === 0 ? 0 : x.ndim ? Math.floor(rng() * 5) : 1;
    const ix = idxTensor(randInts(rng, k, n), [k]);
    return { got: x.indexSelect(a, ix), want: (xr) => refIndexSelect(xr, a, { data: Float64Array.from(ix.dataSync()), shape: [k] }) };
  } },
  { name: 'scatterAdd', run: (x, rng) => {
    const nd = x.ndim, a = nd ? Math.floor(rng() * nd) : 0;
    const shape = x.shape.map((n, d) => (d === a && n > 0 ? Math.floor(rng() * 4) : Math.floor(rng() * (n + 1))));
    const ix = idxTensor(randInts(rng, numel(shape), nd ? x.shape[a] : 1), shape);
    const src = kiln.randint(-5, 5, shape.map((s) => s + (rng() < 0.3 ? 1 : 0)), {}).to(x.dtype);
    return { got: x.scatterAdd(a, ix, src), want: (xr) => refScatterAdd(xr, a, { data: Float64Array.from(ix.dataSync()), shape }, { data: Float64Array.from(src.dataSync()), shape: src.shape }) };
  } },
  { name: 'sort', run: (x, rng) => {
    const a = x.ndim ? Math.floor(rng() * x.ndim) : 0, desc = rng() < 0.5;
    const r = x.sort(a, desc);
    const wantIdx = rng() < 0.5;
    return { got: wantIdx ? r.indices : r.values, want: (xr) => (wantIdx ? refSort(xr, a, desc).indices : refSort(xr, a, desc).values) };
  } },
  { name: 'flip', run: (x, rng) => {
    const dims = [...Array(x.ndim).keys()].filter(() => rng() < 0.5);
    return { got: x.flip(dims), want: (xr) => refFlip(xr, dims) };
  } },
  { name: 'roll', run: (x, rng) => {
    if (rng() < 0.3 || x.ndim === 0) { const s = Math.floor(rng() * 9) - 4; return { got: x.roll(s), want: (xr) => refRoll(xr, [s]) }; }
    const dims = [...Array(x.ndim).keys()].filter(() => rng() < 0.6), shifts = dims.map(() => Math.floor(rng() * 11) - 5);
    return { got: x.roll(shifts, dims), want: (xr) => refRoll(xr, shifts, dims) };
  } },
  { name: 'tril/triu', run: (x, rng) => {
    const y = x.ndim < 2 ? x.reshape([1, x.size]) : x, k = Math.floor(rng() * 7) - 3, lower = rng() < 0.5;
    return { got: lower ? y.tril(k) : y.triu(k), want: (xr) => refTri(R.reshape(xr, y.shape), k, lower) };
  } },
  { name: 'repeat', run: (x, rng) => {
    const reps = [...Array(x.ndim + Math.floor(rng() * 2)).keys()].map(() => Math.floor(rng() * 3));
    return { got: x.repeat(reps), want: (xr) => refRepeat(xr, reps) };
  } },
  { name: 'any/all', run: (x, rng) => {
    const isAny = rng() < 0.5, keep = rng() < 0.5;
    const dims = rng() < 0.3 ? undefined : [...Array(x.ndim).keys()].filter(() => rng() < 0.5);
    const y = x.gt(0.5);
    return { got: isAny ? y.any(dims, keep) : y.all(dims, keep), want: (xr) => refTruth(R.map(xr, (v) => (v > 0.5 ? 1 : 0)), isAny, dims, keep) };
  } },
];

/** A random input: 0-4 dims of 0-4, any dtype, contiguous, transposed or expanded; NaN and ties mixed in. */
function randomInput(rng: () => number): Tensor {
  const nd = Math.floor(rng() * 5);
  const shape = Array.from({ length: nd }, () => (rng() < 0.1 ? 0 : 1 + Math.floor(rng() * 4)));
  const dtype = pick(rng, ['float32', 'float64', 'int32'] as const);
  const layout = nd >= 2 ? pick(rng, ['contiguous', 'transposed', 'expanded'] as const) : 'contiguous';
  const make = (s: number[]) => {
    const v = Array.from({ length: numel(s) }, () => (rng() < 0.2 ? 1 : Math.round((rng() * 8 - 4) * 4) / 4));
    if (dtype !== 'int32' && v.length && rng() < 0.2) v[Math.floor(rng() * v.length)] = NaN;
    return kiln.tensor(dtype === 'int32' ? Int32Array.from(v.map(Math.round)) : Float64Array.from(v), { shape: s }).to(dtype);
  };
  if (layout === 'transposed') return make([...shape].reverse()).permute([...Array(nd).keys()].reverse());
  if (layout === 'expanded') return make(shape.map((n, d) => (d === 0 ? 1 : n))).expand(shape);
  return make(shape);
}

test('random shapes, dtypes and layouts match the references', (t) => {
  const rng = prng(20240607);
  let checked = 0;
  for (let it = 0; it < 400; it++) {
    const c = cases[it % cases.length];
    kiln.tidy(() => {
      const x = randomInput(rng);
      const xr = { data: Float64Array.from(x.dataSync()), shape: x.shape.slice() };
      const { got, want } = c.run(x, rng);
      const w = want(xr);
      const what = `${c.name} #${it} of ${x.dtype} [${x.shape}] (strides [${x.strides}])`;
      t.deepEqual(got.shape, w.shape, `${what}: shape`);
      const g = Array.from(got.dataSync()), wd = Array.from(w.data);
      if (!g.every((v, i) => (Number.isNaN(wd[i]) ? Number.isNaN(v) : v === wd[i]))) t.fail(`${what}: got [${g}], want [${wd}]`);
      else checked++;
    });
  }
  t.is(checked, 400);
});

// ---------------------------------------------------------------- semantics

test('sort is stable in both directions and puts NaN as the largest value (as torch.sort stable=True)', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([1, NaN, 0, -0, 0, NaN, 1]);
    t.deepEqual(x.sort().indices.toArray(), [2, 3, 4, 0, 6, 1, 5]);
    t.deepEqual(x.sort(0, true).indices.toArray(), [1, 5, 0, 6, 2, 3, 4]);
    t.deepEqual(x.argsort(-1, true).toArray(), [1, 5, 0, 6, 2, 3, 4]);
    const v = Array.from(x.sort().values.dataSync());
    t.deepEqual(v.slice(0, 5), [0, -0, 0, 1, 1]);
    t.true(Number.isNaN(v[5]) && Number.isNaN(v[6]));
  });
});

test('0-d inputs: gather, indexSelect, sort, flip, roll, repeat, any and all', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor(2.5);
    const i = kiln.tensor(Int32Array.of(0), { shape: [] });
    t.is(x.gather(0, i).item(), 2.5);
    t.deepEqual(x.indexSelect(-1, i).shape, []);
    const s = x.sort();
    t.is(s.values.item(), 2.5);
    t.is(s.indices.item(), 0);
    t.is(x.flip(0).item(), 2.5);
    t.is(x.roll(3).item(), 2.5);
    t.deepEqual(x.repeat(2, 3).shape, [2, 3]);
    t.is(x.any().item(), 1);
    t.is(kiln.tensor(0).all(0).item(), 0);
    t.is(kiln.zeros([0]).all().item(), 1);
    t.is(kiln.zeros([0]).any().item(), 0);
  });
});

test('chunk follows torch.chunk: fewer chunks when they do not divide, empty views for a size-0 dim', (t) => {
  kiln.tidy(() => {
    t.deepEqual(kiln.zeros([5]).chunk(4).map((c) => c.shape[0]), [2, 2, 1]);
    t.deepEqual(kiln.zeros([6]).chunk(4).map((c) => c.shape[0]), [2, 2, 2]);
    t.deepEqual(kiln.zeros([5, 0]).chunk(3, 1).map((c) => c.shape), [[5, 0], [5, 0], [5, 0]]);
    t.deepEqual(kiln.zeros([2, 0]).chunk(3, 0).map((c) => c.shape), [[1, 0], [1, 0]]);
  });
});

test('half dtypes: flip, gather, sort, tril, repeat and scatterAdd keep the dtype and the values', (t) => {
  kiln.tidy(() => {
    const x32 = kiln.tensor([[1.5, -2, 3], [0.25, 8, -1]]);
    const i = kiln.tensor(Int32Array.from([2, 0, 1, 1, 1, 0]), { shape: [2, 3] });
    for (const d of ['float16', 'bfloat16'] as const) {
      const x = x32.to(d);
      const pairs: [Tensor, Tensor][] = [
        [x.flip(1), x32.flip(1)], [x.gather(1, i), x32.gather(1, i)], [x.sort(0, true).values, x32.sort(0, true).values],
        [x.tril(), x32.tril()], [x.repeat(2, 1), x32.repeat(2, 1)], [x.scatterAdd(1, i, x), x32.scatterAdd(1, i, x32)],
      ];
      for (const [h, f] of pairs) {
        t.is(h.dtype, d);
        t.deepEqual(h.toArray(), f.toArray());
      }
    }
  });
});

test('gradients accumulate over repeated indices and are deterministic', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([1, 2, 3], { requiresGrad: true });
    x.indexSelect(0, kiln.tensor(Int32Array.from([2, 2, 0, 2]))).sum().backward();
    t.deepEqual(x.grad!.toArray(), [1, 0, 3]);
    const y = kiln.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    y.repeat(3, 2).sum().backward();
    t.deepEqual(y.grad!.toArray(), [[6, 6], [6, 6]]);
  });
});

test('no tensors are left behind, with and without a graph', (t) => {
  const x = kiln.randn([3, 4]), xg = kiln.randn([3, 4], { requiresGrad: true });
  const i = kiln.tensor(Int32Array.from([0, 2, 1, 0]), { shape: [1, 4] }), i1 = kiln.tensor(Int32Array.from([0, 2, 2]));
  const s = kiln.randn([1, 4]);
  const T = (x: Tensor, made: Tensor[]) => { made.push(x.T); return made[made.length - 1]; };
  const runs: ((x: Tensor, made: Tensor[]) => Tensor[])[] = [
    (x) => [x.gather(0, i)], (x) => [x.indexSelect(1, i1)], (x) => [x.scatterAdd(0, i, s)],
    (x) => { const r = x.sort(0, true); return [r.values, r.indices]; }, (x) => [x.argsort()], (x, m) => [T(x, m).flip(0, 1)],
    (x) => [x.roll(2)], (x, m) => [T(x, m).roll([1, 2], [0, 1])], (x) => [x.tril(1)], (x) => [x.triu()], (x) => [x.repeat(2, 1, 2)],
    (x) => x.chunk(2, 1), (x) => [x.any(0)], (x) => [x.all()],
  ];
  for (const [k, run] of runs.entries()) {
    // Without a graph the op frees what it made at once; with one, the scope frees what backward saved.
    let before = kiln.memory().tensors;
    const made: Tensor[] = [];
    for (const o of [...run(x, made), ...made]) o.dispose();
    t.is(kiln.memory().tensors, before, `run ${k} without a graph`);
    before = kiln.memory().tensors;
    kiln.tidy(() => {
      const outs = run(xg, []);
      if (outs[0].requiresGrad) outs[0].mul(1).sum().backward();
    });
    xg.grad?.dispose();
    xg.grad = null;
    t.is(kiln.memory().tensors, before, `run ${k} with a graph`);
  }
  for (const u of [x, xg, i, i1, s]) u.dispose();
});

// ---------------------------------------------------------------- errors

test('bad input is a KilnError naming the op and the shapes', (t) => {
  kiln.tidy(() => {
    const x = kiln.randn([2, 3]);
    const idx = (v: number[], shape: number[]) => kiln.tensor(Int32Array.from(v), { shape });
    const err = (f: () => unknown, code: string, msg: RegExp) => {
      const e = t.throws(f, { instanceOf: kiln.KilnError });
      t.is(e?.code as string, code, e?.message);
      t.regex(e?.message ?? '', msg);
    };
    err(() => x.gather(1, idx([0, 1, 3, 0], [2, 2])), 'INDEX_OUT_OF_RANGE', /gather: index 3 at position \[1, 0\] of index \[2, 2\] is outside \[0, 3\)/);
    err(() => x.gather(0, idx([-1], [1, 1])), 'INDEX_OUT_OF_RANGE', /gather: index -1 at position \[0, 0\]/);
    err(() => x.gather(1, idx([0], [1])), 'SHAPE_MISMATCH', /gather: input \[2, 3\], index \[1\]/);
    err(() => x.gather(1, idx([0, 0, 0, 0, 0, 0], [3, 2])), 'SHAPE_MISMATCH', /gather: index \[3, 2\] is larger than input \[2, 3\] in dimension 0/);
    err(() => x.gather(1, kiln.zeros([2, 2])), 'DTYPE_MISMATCH', /gather: index must be int32, got float32 \[2, 2\]/);
    err(() => x.gather(2, idx([0], [1, 1])), 'INVALID_ARGUMENT', /gather: axis 2 is out of range/);
    err(() => x.indexSelect(0, idx([0, 1], [1, 2])), 'SHAPE_MISMATCH', /indexSelect: index must be 1-D, got \[1, 2\]/);
    err(() => x.indexSelect(1, idx([4], [1])), 'INDEX_OUT_OF_RANGE', /indexSelect: index 4 at position \[0\] of index \[1\] is outside \[0, 3\) \(dimension 1 of input \[2, 3\]\)/);
    err(() => kiln.zeros([0, 2]).indexSelect(0, idx([0], [1])), 'INDEX_OUT_OF_RANGE', /outside \[0, 0\)/);
    err(() => x.scatterAdd(0, idx([0], [1, 1]), kiln.zeros([1, 1], { dtype: 'float64' })), 'DTYPE_MISMATCH', /scatterAdd: src float64 \[1, 1\] for input float32 \[2, 3\]/);
    err(() => x.scatterAdd(0, idx([0, 0], [1, 2]), kiln.zeros([1, 1])), 'SHAPE_MISMATCH', /scatterAdd: index \[1, 2\] is larger than src \[1, 1\]/);
    err(() => kiln.tensor(Int32Array.of(2147483647)).scatterAdd(0, idx([0], [1]), kiln.tensor(Int32Array.of(1))), 'INVALID_ARGUMENT',
      /scatterAdd: a sum of int32 input \[1\] and src \[1\] does not fit int32/);
    err(() => x.flip(0, -2), 'INVALID_ARGUMENT', /flip: dimension repeated in \[0,0\] for \[2, 3\]/);
    err(() => x.roll([1, 2], [0]), 'INVALID_ARGUMENT', /roll: 2 shifts for 1 dims of \[2, 3\]/);
    err(() => x.roll([1, 2]), 'INVALID_ARGUMENT', /roll: 2 shifts without dims for \[2, 3\]/);
    err(() => kiln.zeros([3]).tril(), 'INVALID_ARGUMENT', /tril: needs at least 2 dimensions, got \[3\]/);
    err(() => x.triu(0.5), 'INVALID_ARGUMENT', /triu: diagonal must be an integer/);
    err(() => x.repeat(2), 'INVALID_ARGUMENT', /repeat: 1 repeats for \[2, 3\]/);
    err(() => x.repeat(2, -1), 'INVALID_ARGUMENT', /repeat: reps must be an array of non-negative integers/);
    err(() => x.chunk(0), 'INVALID_ARGUMENT', /chunk: chunks must be a positive integer, got 0 for \[2, 3\]/);
    err(() => kiln.tensor(1).chunk(2), 'INVALID_ARGUMENT', /chunk: a 0-d tensor/);
    err(() => x.sort(2), 'INVALID_ARGUMENT', /sort: axis 2 is out of range/);
    err(() => x.any(3), 'INVALID_ARGUMENT', /any: axis 3 is out of range/);
    err(() => kiln.gather(null as unknown as Tensor, 0, idx([0], [1])), 'INVALID_ARGUMENT', /gather: input must be a Tensor/);
  });
});

// ---------------------------------------------------------------- the native kernels, called directly

test('native sort: every row length (insertion and radix paths), ties, NaN and -0, both directions, float32 and float64', (t) => {
  const rng = prng(77);
  const before = kiln.memory().tensors;
  for (const n of [1, 2, 7, 48, 49, 300, 2100]) {
    const rows = n > 1000 ? 2 : 5;
    const v = Array.from({ length: rows * n }, () => {
      const u = rng();
      return u < 0.05 ? NaN : u < 0.1 ? -0 : u < 0.15 ? Infinity : u < 0.2 ? -Infinity : u < 0.5 ? Math.round(rng() * 6 - 3) : (rng() - 0.5) * 1e6;
    });
    for (const dtype of ['float32', 'float64'] as const) {
      for (const descending of [false, true]) {
        kiln.tidy(() => {
          const x = kiln.tensor(Float64Array.from(v), { shape: [rows, n], dtype });
          const xs = Array.from(x.dataSync());
          const vals = kiln.zeros([rows, n], { dtype }), idx = kiln.zeros([rows, n], { dtype: 'int32' });
          A[0] = descending ? 1 : 0;
          A[1] = rows;
          A[2] = n;
          N.sort(arg(4, x), arg(7, vals), arg(10, idx));
          const want = Array.from({ length: rows }, (_, r) => order(xs.slice(r * n, (r + 1) * n), descending)).flat();
          const got = Array.from(idx.dataSync());
          t.deepEqual(got, want, `indices n=${n} ${dtype} descending=${descending}`);
          const gv = Array.from(vals.dataSync()), wv = want.map((i, k) => xs[Math.floor(k / n) * n + i]);
          t.true(gv.every((g, k) => Object.is(g, wv[k])), `values (bit for bit, -0 kept) n=${n} ${dtype} descending=${descending}`);
        });
      }
    }
  }
  t.is(kiln.memory().tensors, before);
});

/** The reference of one axis kernel call over the positions of shape (strides in elements). */
function refAxis(scatter: boolean, a: number, n: number, shape: number[], data: Float64Array, ds: number[], idx: Int32Array, is: number[],
  dense: Float64Array, ss: number[]): { data: Float64Array; dense: Float64Array; bad: number } {
  const d2 = Float64Array.from(data), s2 = Float64Array.from(dense);
  let bad = -1;
  for (let p = 0; p < numel(shape); p++) {
    const q = unravel(p, shape);
    const off = (st: number[]) => q.reduce((acc, c, d) => acc + c * st[d], 0);
    const v = idx[off(is)];
    if (v < 0 || v >= n) { if (bad < 0) bad = p; continue; }
    const o = off(ds) + (v - q[a]) * ds[a];
    if (scatter) d2[o] += dense[off(ss)];
    else s2[off(ss)] = data[o];
  }
  return { data: d2, dense: s2, bad };
}

test('native gather / scatterAdd: strided and broadcast operands against the reference, first bad position reported', (t) => {
  const rng = prng(91);
  const ri = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const before = kiln.memory().tensors;
  for (let trial = 0; trial < 60; trial++) {
    const nd = ri(1, 4), a = ri(0, nd - 1), n = ri(1, 5);
    const shape = Array.from({ length: nd }, () => ri(1, 4));
    // Strides: a contiguous layout of a larger box, shuffled, with a broadcast (0) now and then.
    const strided = (dims: number[], zeroOk: boolean) => {
      const box = dims.map((s) => s + ri(0, 1)), order = [...box.keys()].sort(() => rng() - 0.5), st = new Array<number>(dims.length);
      let acc = 1;
      for (const d of order) { st[d] = zeroOk && rng() < 0.15 ? 0 : acc; acc *= box[d]; }
      return { st, size: acc };
    };
    const dataShape = shape.map((s, d) => (d === a ? n : s));
    const dv = strided(dataShape, false), iv = strided(shape, true), sv = strided(shape, true);
    const bad = trial % 4 === 3;
    const idxVals = Int32Array.from({ length: iv.size }, () => (bad && rng() < 0.3 ? (rng() < 0.5 ? -1 : n) : ri(0, n - 1)));
    const dataVals = Float64Array.from({ length: dv.size }, () => ri(-8, 8) / 4), denseVals = Float64Array.from({ length: sv.size }, () => ri(-8, 8) / 4);
    const cfg = JSON.stringify({ shape, a, n, ds: dv.st, is: iv.st, ss: sv.st });
    for (const dtype of ['float32', 'float64'] as const) {
      for (const scatter of [false, true]) {
        kiln.tidy(() => {
          const data = kiln.tensor(dataVals, { shape: [dv.size], dtype }), idx = kiln.tensor(idxVals, { shape: [iv.size] });
          const dense = kiln.tensor(denseVals, { shape: [sv.size], dtype });
          // Targets must not alias: data strides are never 0 here, and a gather skips a broadcast output.
          const want = refAxis(scatter, a, n, shape, dataVals, dv.st, idxVals, iv.st, denseVals, sv.st);
          A[0] = nd; A[1] = a; A[2] = n;
          shape.forEach((s, d) => { A[3 + d] = s; A[11 + d] = dv.st[d]; A[19 + d] = iv.st[d]; A[27 + d] = sv.st[d]; });
          if (!scatter && sv.st.some((s, d) => s === 0 && shape[d] > 1)) return;  // a gather output must not alias either
          const got = N[scatter ? 'scatterAdd' : 'gather'](arg(36, data), arg(39, idx), arg(42, dense));
          t.is(got, want.bad, `bad position ${scatter ? 'scatterAdd' : 'gather'} ${dtype} ${cfg}`);
          if (want.bad >= 0) return;
          t.deepEqual(Array.from(scatter ? data.dataSync() : dense.dataSync()), Array.from(scatter ? want.data : want.dense),
            `${scatter ? 'scatterAdd' : 'gather'} ${dtype} ${cfg}`);
        });
      }
    }
  }
  t.is(kiln.memory().tensors, before);
});

test('native scatterAdd sums in index order: the same bits on 1 and 2 threads', (t) => {
  const threads = kiln.getNumThreads();
  try {
    const run = (nt: number) => kiln.tidy(() => {
      kiln.setNumThreads(nt);
      kiln.manualSeed(3);
      const g = kiln.randn([4, 3000, 64]), idx = kiln.randint(0, 5, [4, 3000, 64]);
      return Array.from(gatherGradOf(g, idx).dataSync());
    });
    t.deepEqual(run(2), run(1));
  } finally {
    kiln.setNumThreads(threads);
  }
});
const gatherGradOf = (g: Tensor, idx: Tensor) => {
  const x = kiln.zeros([4, 5, 64], { requiresGrad: true });
  x.gather(1, idx).mul(g).sum().backward();
  return x.grad!;
};

test('raw addon: sort, gather and scatterAdd refuse bad arguments with KilnErrors', (t) => {
  const stats0 = N.memoryStats();
  const h = N.alloc(0, 64), h2 = N.alloc(0, 64), h3 = N.alloc(0, 64);  // 16 floats each
  const refAt = (pos: number, handle: number, dtype = 0) => { A[pos] = handle; A[pos + 1] = 0; A[pos + 2] = dtype; };
  const throwsCode = (fn: () => void, code: kiln.KilnErrorCode, what: string) => {
    const e = t.throws(fn, { instanceOf: kiln.KilnError }, what) as kiln.KilnError | undefined;
    if (e) t.is(e.code, code, `${what}: ${e.message}`);
  };
  const sortCall = (args: number[], dx = 0, dv = 0, di = 1) => () => {
    args.forEach((v, i) => { A[i] = v; });
    refAt(4, h, dx); refAt(7, h2, dv); refAt(10, h3, di);
    N.sort(undefined, undefined, undefined);
  };
  // ndim, axis, n, shape[8], data strides[8], index strides[8], dense strides[8]
  const geo = (nd: number, a: number, n: number, shape: number[], ds: number[], is: number[], ss: number[]) => {
    const g = new Array<number>(35).fill(0);
    g[0] = nd; g[1] = a; g[2] = n;
    shape.forEach((v, d) => { g[3 + d] = v; g[11 + d] = ds[d]; g[19 + d] = is[d]; g[27 + d] = ss[d]; });
    return g;
  };
  const axisCall = (fn: 'gather' | 'scatterAdd', g: number[], dd = 0, di = 1, ds = 0) => () => {
    g.forEach((v, i) => { A[i] = v; });
    refAt(36, h, dd); refAt(39, h2, di); refAt(42, h3, ds);
    N[fn](undefined, undefined, undefined);
  };
  const ok = geo(2, 1, 4, [4, 4], [4, 1], [4, 1], [4, 1]);  // 16 of each: fits
  try {
    t.notThrows(sortCall([0, 4, 4]));
    throwsCode(sortCall([2, 4, 4]), 'INVALID_ARGUMENT', 'sort: descending 2');
    throwsCode(sortCall([0, 4, 5]), 'INVALID_ARGUMENT', 'sort: past the end');
    throwsCode(sortCall([0, -1, 4]), 'INVALID_ARGUMENT', 'sort: negative rows');
    throwsCode(sortCall([0, NaN, 4]), 'INVALID_ARGUMENT', 'sort: NaN rows');
    throwsCode(sortCall([0, 1, 2 ** 31]), 'INVALID_ARGUMENT', 'sort: n past int32');
    throwsCode(sortCall([0, 2 ** 40, 2 ** 20]), 'INVALID_ARGUMENT', 'sort: extent past 2^46');
    throwsCode(sortCall([0, 4, 4], 1, 1), 'DTYPE_MISMATCH', 'sort: int32 input');
    throwsCode(sortCall([0, 4, 4], 0, 2), 'DTYPE_MISMATCH', 'sort: values of another dtype');
    throwsCode(sortCall([0, 4, 4], 0, 0, 0), 'DTYPE_MISMATCH', 'sort: float indices');
    throwsCode(sortCall([0, 4, 4], 2, 2), 'INVALID_ARGUMENT', 'sort: float64 past the end');
    for (const fn of ['gather', 'scatterAdd'] as const) {
      // h2's contents are arbitrary: a bad index is reported (a return value), never read.
      t.notThrows(axisCall(fn, ok));
      const bad = (i: number, v: number) => ok.map((x, j) => (j === i ? v : x));
      throwsCode(axisCall(fn, bad(0, 0)), 'INVALID_ARGUMENT', `${fn}: ndim 0`);
      throwsCode(axisCall(fn, bad(0, 9)), 'INVALID_ARGUMENT', `${fn}: ndim 9`);
      throwsCode(axisCall(fn, bad(1, 2)), 'INVALID_ARGUMENT', `${fn}: axis past ndim`);
      throwsCode(axisCall(fn, bad(2, 2 ** 31)), 'INVALID_ARGUMENT', `${fn}: n past int32`);
      throwsCode(axisCall(fn, bad(2, 5)), 'INVALID_ARGUMENT', `${fn}: data past the end along the axis`);
      throwsCode(axisCall(fn, bad(3, 5)), 'INVALID_ARGUMENT', `${fn}: shape past the end`);
      throwsCode(axisCall(fn, bad(11, -4)), 'INVALID_ARGUMENT', `${fn}: negative stride`);
      throwsCode(axisCall(fn, bad(20, 1.5)), 'INVALID_ARGUMENT', `${fn}: fractional stride`);
      throwsCode(axisCall(fn, bad(27, 2 ** 46)), 'INVALID_ARGUMENT', `${fn}: a stride spanning past 2^46`);
      throwsCode(axisCall(fn, geo(3, 0, 1, [2 ** 30, 2 ** 30, 2 ** 30], [0, 0, 0], [0, 0, 0], [0, 0, 0])), 'INVALID_ARGUMENT', `${fn}: index past 2^46 elements`);
      throwsCode(axisCall(fn, ok, 0, 0), 'DTYPE_MISMATCH', `${fn}: float32 index`);
      throwsCode(axisCall(fn, ok, 0, 1, 2), 'DTYPE_MISMATCH', `${fn}: dense of another dtype`);
      throwsCode(axisCall(fn, ok, 2, 1, 2), 'INVALID_ARGUMENT', `${fn}: float64 past the end`);
    }
    throwsCode(axisCall('scatterAdd', ok, 1, 1, 1), 'DTYPE_MISMATCH', 'scatterAdd: int32 data');
    t.notThrows(axisCall('gather', ok, 1, 1, 1), 'gather moves any dtype');
  } finally {
    t.true(N.free(h));
    t.true(N.free(h2));
    t.true(N.free(h3));
  }
  A[36] = 987654321;
  throwsCode(() => { ok.forEach((v, i) => { A[i] = v; }); N.gather(undefined, undefined, undefined); }, 'DISPOSED', 'forged handle');
  t.is(N.memoryStats().hostAllocations, stats0.hostAllocations, 'no native allocation leaked');
});
