// Where kiln used to differ from PyTorch 1.13: type promotion with 0-d tensors and numbers, concat /
// stack of mixed dtypes, topk with k = 0 and empty inputs, the sign of zero from relu / tanh, and
// int32 sums that wrapped. Expectations come from test/fixtures/parity.json
// (bench/reference/make_parity_fixtures.py) or are inlined with the torch call that gives them.
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import * as kiln from '../src/index.js';
import type { DType, Device, Tensor } from '../src/index.js';
import { perDevice } from './helpers/checkop.js';

interface TopkCase {
  shape: number[]; k: number; largest: boolean; input: number[];
  valuesShape?: number[]; values?: number[]; indices?: number[]; error?: string;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/parity.json', import.meta.url), 'utf8')) as {
  torch: string;
  promotion: [string, string, string, string, string, string][];
  concat: { a: DType; b: DType; cat: DType; stack: DType }[];
  negzero: { op: string; dtype: DType; n: number; signbit: boolean }[];
  topk: TopkCase[];
};

const LETTER: Record<string, DType> = { i: 'int32', h: 'float16', b: 'bfloat16', f: 'float32', d: 'float64' };
type Operand = Tensor | number;

const throwsCode = (t: ExecutionContext, fn: () => unknown, code: kiln.KilnError['code'], ...parts: string[]) => {
  const e = t.throws(fn) as kiln.KilnError;
  t.true(e instanceof kiln.KilnError, String(e));
  t.is(e.code, code, e.message);
  for (const p of parts) t.true(e.message.includes(p), `message '${e.message}' should name '${p}'`);
};

// ---------------------------------------------------------------- 1. type promotion

// The operands of the fixture: D a [3] tensor of 2s, Z a 0-d 2, I the number 2, F the number 2.5.
function operand(code: string, device: Device): Operand {
  if (code === 'I') return 2;
  if (code === 'F') return 2.5;
  return kiln.full(code[0] === 'D' ? [3] : [], 2, { dtype: LETTER[code[1]], device });
}

const BINARY: Record<string, (a: Operand, b: Operand) => Tensor> = {
  add: kiln.add, sub: kiln.sub, mul: kiln.mul, div: kiln.div, pow: kiln.pow, maximum: kiln.maximum, minimum: kiln.minimum,
  eq: kiln.eq, ne: kiln.ne, lt: kiln.lt, le: kiln.le, gt: kiln.gt, ge: kiln.ge,
};

perDevice('every binary op and where give torch.result_type for every dtype pair and rank combination', (t, device) => {
  t.true(fixture.promotion.length > 1900);
  kiln.tidy(() => {
    const wrong: string[] = [];
    for (const [op, ca, cb, want, rt] of fixture.promotion) {
      const a = operand(ca, device), b = operand(cb, device);
      const dim = ca[0] === 'D' || cb[0] === 'D';
      const out = op === 'where' ? kiln.where(kiln.ones(dim ? [3] : [], { dtype: 'int32', device }), a, b) : BINARY[op](a, b);
      if (out.dtype !== LETTER[want]) wrong.push(`${op}(${ca}, ${cb}) gave ${out.dtype}, torch ${LETTER[want]}`);
      if (kiln.resultType(a, b) !== LETTER[rt]) wrong.push(`resultType(${ca}, ${cb}) gave ${kiln.resultType(a, b)}, torch ${LETTER[rt]}`);
      t.deepEqual(out.shape, dim ? [3] : []);
    }
    t.deepEqual(wrong, []);
  });
});

perDevice('a 0-d operand is cast to the result dtype before the op, as in PyTorch', (t, device) => {
  kiln.tidy(() => {
    // torch.tensor([1.], dtype=torch.bfloat16) + torch.tensor(2**-8 * (1 + 2**-12)) -> [1.] bfloat16: the
    // float32 operand rounds to 2**-8 in bfloat16 first, and 1 + 2**-8 ties to even.
    const small = 2 ** -8 * (1 + 2 ** -12);
    const one = kiln.ones([3], { dtype: 'bfloat16', device });
    const s = kiln.tensor(new Float32Array([small]), { device }).reshape([]);
    const sum = kiln.add(one, s);
    t.is(sum.dtype, 'bfloat16');
    t.deepEqual(Array.from(sum.dataSync()), [1, 1, 1]);
    // torch.eq(torch.tensor([2**-8], dtype=torch.bfloat16), torch.tensor(2**-8 * (1 + 2**-12))) -> [True]
    t.deepEqual(kiln.eq(kiln.full([1], 2 ** -8, { dtype: 'bfloat16', device }), s).toArray(), [1]);
    // int32[3] * 2.5 -> float32 [2.5, 5, 7.5]; int32[3] + float64[] -> float64
    const i = kiln.tensor(new Int32Array([1, 2, 3]), { device });
    const m = kiln.mul(i, 2.5);
    t.is(m.dtype, 'float32');
    t.deepEqual(m.toArray(), [2.5, 5, 7.5]);
    t.is(kiln.add(i, kiln.full([], 0.25, { dtype: 'float64', device })).dtype, 'float64');
    // torch.pow(torch.tensor([2, -3, 0, 1, -1, 5], dtype=torch.int32), same) -> [4, 0, 1, 1, -1, 3125] int32
    const p = kiln.tensor(new Int32Array([2, -3, 0, 1, -1, 5]), { device });
    const pp = kiln.pow(p, p);
    t.is(pp.dtype, 'int32');
    t.deepEqual(pp.toArray(), [4, 0, 1, 1, -1, 3125]);
    // torch.pow(that, 3) -> [8, -27, 0, 1, -1, 125] int32; torch.pow(2, that) -> [4, 0, 1, 2, 0, 32] int32;
    // torch.pow(3 (int32), 40) wraps to 689956897 like PyTorch's int32 arithmetic
    t.deepEqual(kiln.pow(p, 3).toArray(), [8, -27, 0, 1, -1, 125]);
    t.deepEqual(kiln.pow(2, p).toArray(), [4, 0, 1, 2, 0, 32]);
    t.deepEqual(kiln.pow(kiln.full([1], 3, { dtype: 'int32', device }), 40).toArray(), [689956897]);
    // torch.pow(int32 tensor, -1): RuntimeError "Integers to negative integer powers are not allowed."
    throwsCode(t, () => kiln.pow(p, -1), 'INVALID_ARGUMENT', 'pow', 'negative', '[6]');
    t.is(kiln.pow(p, 0.5).dtype, 'float32');
    throwsCode(t, () => kiln.maximum(p, 2 ** 40), 'INVALID_ARGUMENT', 'maximum', 'int32');
  });
});

perDevice('mixed-dtype gradients come back in each input dtype', (t, device) => {
  kiln.tidy(() => {
    // a = bfloat16 [1, 2, 3], b = float32 0.5 (both requiring grad); (a * b).sum().backward():
    // torch: a * b is bfloat16, a.grad = [0.5, 0.5, 0.5] bfloat16, b.grad = 6.0 float32
    const a = kiln.tensor([1, 2, 3], { dtype: 'bfloat16', device, requiresGrad: true });
    const b = kiln.full([], 0.5, { device, requiresGrad: true });
    const o = kiln.mul(a, b);
    t.is(o.dtype, 'bfloat16');
    o.sum().backward();
    t.is(a.grad!.dtype, 'bfloat16');
    t.deepEqual(Array.from(a.grad!.dataSync()), [0.5, 0.5, 0.5]);
    t.is(b.grad!.dtype, 'float32');
    t.is(b.grad!.item(), 6);
    // int32 [1, 2, 3] + float64 0.25 (grad) is float64; (o * [1, 2, 3]).sum() gives c.grad = 6.0 float64
    const c = kiln.full([], 0.25, { dtype: 'float64', device, requiresGrad: true });
    const o2 = kiln.add(kiln.tensor(new Int32Array([1, 2, 3]), { device }), c);
    t.is(o2.dtype, 'float64');
    kiln.mul(o2, kiln.tensor(new Float64Array([1, 2, 3]), { device })).sum().backward();
    t.is(c.grad!.dtype, 'float64');
    t.is(c.grad!.item(), 6);
    // torch.where([True, False], float16 [1, 2], float64 3.0 (0-d)) is float16; grads [1, 0] float16 and 1.0 float64
    const h = kiln.tensor([1, 2], { dtype: 'float16', device, requiresGrad: true });
    const z = kiln.full([], 3, { dtype: 'float64', device, requiresGrad: true });
    const w = kiln.where(kiln.tensor(new Int32Array([1, 0]), { device }), h, z);
    t.is(w.dtype, 'float16');
    w.sum().backward();
    t.is(h.grad!.dtype, 'float16');
    t.deepEqual(Array.from(h.grad!.dataSync()), [1, 0]);
    t.is(z.grad!.dtype, 'float64');
    t.is(z.grad!.item(), 1);
  });
});

// ---------------------------------------------------------------- 2. concat / stack

perDevice('concat and stack promote mixed dtypes as torch.cat and torch.stack', (t, device) => {
  kiln.tidy(() => {
    for (const { a, b, cat, stack } of fixture.concat) {
      const x = kiln.full([2], 1, { dtype: a, device }), y = kiln.full([3], 2, { dtype: b, device });
      const c = kiln.concat([x, y]);
      t.is(c.dtype, cat, `cat ${a} ${b}`);
      t.deepEqual(Array.from(c.dataSync()), [1, 1, 2, 2, 2]);
      t.is(kiln.stack([x, y.narrow(0, 0, 2)]).dtype, stack, `stack ${a} ${b}`);
    }
    // torch: x = bfloat16 [1, 2], y = float32 [3, 4, 5] (grad); (cat([x, y]) * [1, 2, 3, 4, 5]).sum().backward()
    // -> float32 result, x.grad [1, 2] bfloat16, y.grad [3, 4, 5] float32
    const x = kiln.tensor([1, 2], { dtype: 'bfloat16', device, requiresGrad: true });
    const y = kiln.tensor([3, 4, 5], { device, requiresGrad: true });
    const i = kiln.tensor(new Int32Array([7]), { device });
    const c = kiln.concat([x, y, i]);
    t.is(c.dtype, 'float32');
    t.deepEqual(Array.from(c.dataSync()), [1, 2, 3, 4, 5, 7]);
    kiln.mul(c, kiln.tensor([1, 2, 3, 4, 5, 6], { device })).sum().backward();
    t.is(x.grad!.dtype, 'bfloat16');
    t.deepEqual(Array.from(x.grad!.dataSync()), [1, 2]);
    t.is(y.grad!.dtype, 'float32');
    t.deepEqual(Array.from(y.grad!.dataSync()), [3, 4, 5]);
    // stack of 0-d tensors of two dtypes: torch.stack([tensor(1., dtype=float16), tensor(2., dtype=float64)]) -> float64 [1, 2]
    const s = kiln.stack([kiln.full([], 1, { dtype: 'float16', device }), kiln.full([], 2, { dtype: 'float64', device })]);
    t.is(s.dtype, 'float64');
    t.deepEqual(s.toArray(), [1, 2]);
    if (device === 'cuda')
      throwsCode(t, () => kiln.concat([kiln.ones([2], { device }), kiln.ones([2], { dtype: 'float64' })]), 'DEVICE_MISMATCH', 'concat');
  });
});

test('concat frees its converted copies and the narrowed gradient views', (t) => {
  const before = kiln.memory().tensors;
  kiln.tidy(() => {
    const x = kiln.tensor([1, 2], { dtype: 'bfloat16', requiresGrad: true });
    const y = kiln.tensor([3, 4, 5], { requiresGrad: true });
    kiln.concat([x, y]).sum().backward();
    t.deepEqual(Array.from(x.grad!.dataSync()), [1, 1]);
  });
  t.is(kiln.memory().tensors, before);
});

// ---------------------------------------------------------------- 3. topk

perDevice('topk matches torch.topk at k = 0, k = size and on empty inputs', (t, device) => {
  kiln.tidy(() => {
    for (const c of fixture.topk) {
      const x = kiln.tensor(Float32Array.from(c.input), { device }).reshape(c.shape);
      const what = `topk ${JSON.stringify(c.shape)} k ${c.k} ${c.largest ? 'largest' : 'smallest'}`;
      if (c.error) {
        throwsCode(t, () => kiln.topk(x, c.k, c.largest), 'INVALID_ARGUMENT', 'topk');
        continue;
      }
      const r = kiln.topk(x, c.k, c.largest);
      t.deepEqual(r.values.shape, c.valuesShape, what);
      t.deepEqual(r.indices.shape, c.valuesShape, what);
      t.is(r.indices.dtype, 'int32');
      t.deepEqual(Array.from(r.values.dataSync()), c.values, what);
      t.deepEqual(Array.from(r.indices.dataSync()), c.indices, what);
    }
    // k = 0 on int32 keeps the dtype: torch.topk(tensor([1, 3, 2], dtype=int32), 0) -> int32 [0]
    const ri = kiln.topk(kiln.tensor(new Int32Array([1, 3, 2]), { device }), 0);
    t.is(ri.values.dtype, 'int32');
    t.deepEqual(ri.values.shape, [0]);
    // torch: x = arange(5.) (grad); topk(x, 0).values.sum().backward() -> x.grad = zeros(5)
    const x = kiln.arange(0, 5, 1, { dtype: 'float32', device, requiresGrad: true });
    kiln.topk(x, 0).values.sum().backward();
    t.deepEqual(x.grad!.toArray(), [0, 0, 0, 0, 0]);
    // torch: x = tensor([3., 1., 2.]) (grad); v = topk(x, 3); (v * [1, 2, 3]).sum().backward() -> x.grad [1, 3, 2]
    const y = kiln.tensor([3, 1, 2], { device, requiresGrad: true });
    const v = kiln.topk(y, 3);
    t.deepEqual(v.indices.toArray(), [0, 2, 1]);
    kiln.mul(v.values, kiln.tensor([1, 2, 3], { device })).sum().backward();
    t.deepEqual(y.grad!.toArray(), [1, 3, 2]);
    // A 0-d input is its own top-1: torch.topk(tensor(5.), 1) and torch.topk(tensor(5.), 0) both give
    // (tensor(5.), tensor(0)); k = 2 is out of range.
    const s = kiln.full([], 5, { device, requiresGrad: true });
    for (const k of [0, 1]) {
      const r = kiln.topk(s, k);
      t.deepEqual(r.values.shape, []);
      t.is(r.values.item(), 5);
      t.is(r.indices.item(), 0);
    }
    kiln.topk(s, 1).values.mul(3).backward();
    t.is(s.grad!.item(), 3);
    throwsCode(t, () => kiln.topk(s, 2), 'INVALID_ARGUMENT', 'topk', '0-d');
  });
});

// ---------------------------------------------------------------- 4. the sign of zero

const UNARY: Record<string, (x: Tensor) => Tensor> = {
  relu: kiln.relu, tanh: kiln.tanh, sigmoid: kiln.sigmoid, gelu: (x) => kiln.gelu(x), geluTanh: (x) => kiln.gelu(x, 'tanh'),
  abs: kiln.abs, neg: kiln.neg, sqrt: kiln.sqrt, sin: kiln.sin,
};

perDevice('unary ops at -0 give the sign of zero PyTorch gives', (t, device) => {
  kiln.tidy(() => {
    const wrong: string[] = [];
    // torch 1.13 has no float16 CPU kernels for most of these: float16 follows float32, the dtype it computes in.
    const rows = [...fixture.negzero, ...fixture.negzero.filter((r) => r.dtype === 'float32').map((r) => ({ ...r, dtype: 'float16' as DType }))];
    for (const { op, dtype, n, signbit } of rows) {
      // torch's vectorised float32 / bfloat16 exact GELU gives +0 at -0 while its scalar loop and
      // float64 give -0 (= -0 * Phi(0)); kiln gives -0 on every path.
      const want = op === 'gelu' ? true : signbit;
      const y = UNARY[op](kiln.full([n], -0, { dtype, device }));
      const got = Array.from(y.dataSync()).map((v) => Object.is(v, -0) || 1 / v < 0);
      if (got.some((g) => g !== want)) wrong.push(`${op} ${dtype} [${n}]: signbit ${got[0]}, torch ${signbit}`);
    }
    t.deepEqual(wrong, []);
    // relu keeps NaN (torch.relu(tensor([nan])) -> [nan]) and its gradient at -0 is 0 (threshold_backward).
    t.true(Number.isNaN(kiln.relu(kiln.full([1], NaN, { device })).toArray()[0] as number));
    const x = kiln.full([2], -0, { device, requiresGrad: true });
    kiln.relu(x).sum().backward();
    t.deepEqual(x.grad!.toArray(), [0, 0]);
  });
});

// ---------------------------------------------------------------- 5. int32 sums

perDevice('int32 sum and cumsum are exact and refuse results that do not fit int32', (t, device) => {
  kiln.tidy(() => {
    const i32 = (v: number[], shape?: number[]) => {
      const x = kiln.tensor(new Int32Array(v), { device });
      return shape ? x.reshape(shape) : x;
    };
    const M = 2147483647;
    // torch.sum(tensor([2**31 - 1, 1, -1], dtype=int32)) -> 2147483647 (int64): a partial past the
    // int32 range that comes back is fine.
    const s = kiln.sum(i32([M, 1, -1]));
    t.is(s.dtype, 'int32');
    t.is(s.item(), M);
    // torch.full((2000,), 10**6, dtype=int32).sum() -> 2000000000
    t.is(kiln.sum(kiln.full([2000], 1e6, { dtype: 'int32', device })).item(), 2e9);
    // torch.sum(tensor([2**31 - 1, 1], dtype=int32)) -> 2147483648, past int32: kiln refuses (it used to wrap).
    throwsCode(t, () => kiln.sum(i32([M, 1])), 'INVALID_ARGUMENT', 'sum', '[2]', 'float64');
    throwsCode(t, () => kiln.sum(i32([-M, -2])), 'INVALID_ARGUMENT', 'sum');
    throwsCode(t, () => kiln.sum(kiln.full([3000], 1e6, { dtype: 'int32', device })), 'INVALID_ARGUMENT', 'sum', '[3000]');
    // Per output: [[2**31 - 1, 1], [5, 6]].sum(1) -> [2147483648, 11]; the message names output [0] and the axes.
    throwsCode(t, () => kiln.sum(i32([M, 1, 5, 6], [2, 2]), 1), 'INVALID_ARGUMENT', 'sum', '[2, 2]', 'axes [1]', 'output [0]');
    t.deepEqual(kiln.sum(i32([M, -1, -5, 6], [2, 2]), 0).toArray(), [M - 5, 5]);
    t.deepEqual(kiln.sum(i32([1, M - 1, 2, 1], [2, 2]), 1, true).toArray(), [[M], [3]]);
    // cumsum keeps int32 (torch gives int64 with the same values): torch.cumsum(tensor([1, 2, 3], dtype=int32), 0) -> [1, 3, 6]
    const c = kiln.cumsum(i32([1, 2, 3]), 0);
    t.is(c.dtype, 'int32');
    t.deepEqual(c.toArray(), [1, 3, 6]);
    t.deepEqual(kiln.cumsum(i32([1, 2, 3, 4, 5, 6], [3, 2]), 0, true).toArray(), [[9, 12], [8, 10], [5, 6]]);
    t.deepEqual(kiln.cumsum(i32([M, 1, -1].reverse()), 0).toArray(), [-1, 0, M]);
    // torch.cumsum(tensor([2**31 - 1, 1, -5], dtype=int32), 0) -> [2147483647, 2147483648, 2147483643]: the middle one does not fit.
    throwsCode(t, () => kiln.cumsum(i32([M, 1, -5]), 0), 'INVALID_ARGUMENT', 'cumsum', 'output [1]', 'float64');
    throwsCode(t, () => kiln.cumsum(i32([M, 1, -5, 1], [2, 2]), 1, true), 'INVALID_ARGUMENT', 'cumsum', 'output [0, 0]');
    // int32 mean (PyTorch refuses integer means) is the float32 rounding of the exact mean: (2**24 + 1 + 2**24 + 2) / 2
    // = 16777217.5 -> 16777218 (a float32 copy of the inputs would give 16777216).
    t.is(kiln.mean(i32([16777217, 16777218])).item(), 16777218);
  });
});
