// Elementwise ops, forward and backward, against the plain references (test/helpers/reference.ts).
import test from 'ava';
import * as kiln from '../src/index.js';
import { checkOp } from './helpers/checkop.js';
import * as R from './helpers/reference.js';

const pos = (shape: number[]) => ({ shape, low: 0.5, high: 2 });
const int32Only = { dtypes: ['int32' as const], grad: false };

// binary, with broadcasting
checkOp('add same shape', [[3, 4], [3, 4]], (a, b) => a.add(b), R.add);
checkOp('add broadcast [3,1]+[1,4]', [[3, 1], [1, 4]], (a, b) => a.add(b), R.add);
checkOp('add broadcast [2,3,4]+[4]', [[2, 3, 4], [4]], (a, b) => kiln.add(a, b), R.add);
checkOp('add broadcast [4]+[2,1,1] (rank grows)', [[4], [2, 1, 1]], (a, b) => a.add(b), R.add);
checkOp('add scalar', [[3, 4]], (a) => a.add(2.5), (a) => R.map(a, (v) => v + 2.5));
checkOp('add 0-d tensor', [[], [2, 3]], (a, b) => a.add(b), R.add);
checkOp('add non-contiguous (transposed) operands', [[4, 3], [3, 4]], (a, b) => a.transpose().add(b), (a, b) => R.add(R.transpose(a), b));
checkOp('sub broadcast', [[2, 3, 1], [3, 4]], (a, b) => a.sub(b), R.sub);
checkOp('sub from scalar', [[5]], (a) => kiln.sub(1, a), (a) => R.map(a, (v) => 1 - v));
checkOp('mul broadcast', [[2, 1, 4], [3, 1]], (a, b) => a.mul(b), R.mul);
checkOp('mul same tensor twice', [[3, 4]], (a) => a.mul(a), (a) => R.mul(a, a));
checkOp('mul scalar', [[6]], (a) => a.mul(-3), (a) => R.map(a, (v) => v * -3));
checkOp('div broadcast', [[2, 3, 4], pos([3, 1])], (a, b) => a.div(b), R.div);
checkOp('div scalar', [[6]], (a) => a.div(4), (a) => R.map(a, (v) => v / 4));
checkOp('maximum', [[3, 4], [4]], (a, b) => kiln.maximum(a, b), (a, b) => R.zip(a, b, Math.max));
checkOp('minimum', [[3, 4], [3, 1]], (a, b) => kiln.minimum(a, b), (a, b) => R.zip(a, b, Math.min));

// unary
checkOp('neg', [[3, 4]], (a) => a.neg(), (a) => R.map(a, (v) => -v));
checkOp('exp', [[3, 4]], (a) => a.exp(), (a) => R.map(a, Math.exp));
checkOp('log', [pos([3, 4])], (a) => a.log(), (a) => R.map(a, Math.log));
checkOp('sqrt', [pos([3, 4])], (a) => a.sqrt(), (a) => R.map(a, Math.sqrt));
checkOp('rsqrt', [pos([3, 4])], (a) => a.rsqrt(), (a) => R.map(a, (v) => 1 / Math.sqrt(v)));
checkOp('pow scalar exponent', [pos([3, 4])], (a) => a.pow(2.5), (a) => R.map(a, (v) => v ** 2.5));
checkOp('pow integer exponent, negative base', [[3, 4]], (a) => a.pow(3), (a) => R.map(a, (v) => v ** 3));
checkOp('pow tensor exponent, broadcast', [pos([3, 4]), [4]], (a, b) => a.pow(b), R.pow);
checkOp('abs', [[3, 4]], (a) => a.abs(), (a) => R.map(a, Math.abs));
checkOp('tanh', [[3, 4]], (a) => a.tanh(), (a) => R.map(a, Math.tanh));
checkOp('sigmoid', [{ shape: [3, 4], low: -6, high: 6 }], (a) => a.sigmoid(), (a) => R.map(a, R.sigmoid));
checkOp('relu', [[3, 4]], (a) => a.relu(), (a) => R.map(a, (v) => Math.max(v, 0)));
checkOp('gelu exact (erf)', [{ shape: [4, 5], low: -4, high: 4 }], (a) => a.gelu(), (a) => R.map(a, R.geluExact));
checkOp('gelu tanh', [{ shape: [4, 5], low: -4, high: 4 }], (a) => a.gelu('tanh'), (a) => R.map(a, R.geluTanh));
checkOp('square', [[3, 4]], (a) => a.square(), (a) => R.map(a, (v) => v * v));
checkOp('clamp', [[4, 5]], (a) => a.clamp(-0.5, 0.7), (a) => R.map(a, (v) => Math.min(Math.max(v, -0.5), 0.7)));
checkOp('clamp min only', [[4, 5]], (a) => kiln.clamp(a, 0), (a) => R.map(a, (v) => Math.max(v, 0)));
checkOp('unary on a transposed view', [[3, 4]], (a) => a.T.exp(), (a) => R.map(R.transpose(a), Math.exp));

// where / maskedFill
checkOp('where broadcast', [{ int: [0, 2], shape: [3, 4] }, [3, 4], [4]], (c, a, b) => kiln.where(c, a, b), R.where);
checkOp('where with scalar branch', [{ int: [0, 2], shape: [2, 3] }, [2, 3]], (c, a) => kiln.where(c, a, 0), (c, a) => R.where(c, a, R.scalar(0)));
checkOp('maskedFill broadcast mask', [[3, 4], { int: [0, 2], shape: [1, 4] }], (x, m) => x.maskedFill(m, -7),
  (x, m) => R.zip(x, m, (v, mv) => (mv !== 0 ? -7 : v)));

// int32 paths
checkOp('add int32', [[3, 4], [4]], (a, b) => a.add(b), R.add, int32Only);
checkOp('sub int32 scalar', [[3, 4]], (a) => a.sub(2), (a) => R.map(a, (v) => v - 2), int32Only);
checkOp('mul int32 broadcast', [[3, 1], [1, 4]], (a, b) => a.mul(b), R.mul, int32Only);
checkOp('neg int32', [[5]], (a) => a.neg(), (a) => R.map(a, (v) => -v), int32Only);
checkOp('abs int32', [[5]], (a) => a.abs(), (a) => R.map(a, Math.abs), int32Only);
checkOp('div int32 gives float32', [[3, 4], { shape: [4], values: [1, 2, 4, -8] }], (a, b) => a.div(b), R.div,
  { ...int32Only, outDtype: () => 'float32' });
checkOp('int32 + float32 promotes to float32', [{ int: [-5, 5], shape: [3, 4] }, [4]], (a, b) => a.add(b), R.add, { dtypes: ['float32'], grad: true });
checkOp('float32 + float64 promotes to float64', [[3, 4]], (a) => a.add(kiln.tensor(new Float64Array([0.25, 0.5, 1, 2]), { device: a.device })),
  (a) => R.add(a, R.ref([0.25, 0.5, 1, 2], [4])), { dtypes: ['float32'], outDtype: () => 'float64' });
checkOp('comparison gt gives int32', [[3, 4], [4]], (a, b) => a.gt(b), (a, b) => R.zip(a, b, (x, y) => +(x > y)),
  { grad: false, outDtype: () => 'int32' });

test('printing uses one format per tensor, as PyTorch: integers, 4 decimals or scientific, aligned', (t) => {
  kiln.tidy(() => {
    t.is(String(kiln.tensor([[1.5, 2], [3, -4]])), 'tensor([[ 1.5000,  2.0000],\n        [ 3.0000, -4.0000]], shape=[2, 2], dtype=float32)');
    t.is(String(kiln.tensor([[1, 2], [30, 4]])), 'tensor([[ 1.,  2.],\n        [30.,  4.]], shape=[2, 2], dtype=float32)');
    t.is(String(kiln.tensor([1e-6, 1, NaN, -Infinity])), 'tensor([1.0000e-6, 1.0000e+0,       nan,      -inf], shape=[4], dtype=float32)');
    t.is(String(kiln.tensor([7, -8], { dtype: 'int32' })), 'tensor([ 7, -8], shape=[2], dtype=int32)');
    t.is(String(kiln.arange(0, 10)), 'tensor([0, 1, 2, ..., 7, 8, 9], shape=[10], dtype=int32)');
  });
});

test('contiguous copies of transposed and permuted views (the tiled transpose path) equal an index-by-index copy', (t) => {
  kiln.tidy(() => {
    const cases: [number[], number[]][] = [[[37, 70], [1, 0]], [[3, 20, 33], [0, 2, 1]], [[9, 17, 130], [2, 1, 0]], [[2, 65, 3, 40], [0, 3, 2, 1]], [[8, 8], [1, 0]]];
    for (const dtype of ['float32', 'float64', 'int32', 'bfloat16'] as const) {
      for (const [shape, perm] of cases) {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = kiln.tensor(Float64Array.from({ length: n }, (_, i) => (i % 251) - 100), { shape }).to(dtype);
        const src = Array.from(x.to('float64').dataSync());
        const y = x.permute(perm).contiguous();
        const got = Array.from(y.to('float64').dataSync());
        const outShape = perm.map((p) => shape[p]);
        const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
        let ok = true;
        for (let o = 0; o < n && ok; o++) {
          let rem = o, at = 0;
          for (let d = outShape.length - 1; d >= 0; d--) {
            at += (rem % outShape[d]) * strides[perm[d]];
            rem = Math.floor(rem / outShape[d]);
          }
          if (got[o] !== src[at]) ok = false;
        }
        t.true(ok, `${dtype} ${JSON.stringify(shape)} permuted ${JSON.stringify(perm)}`);
      }
    }
  });
});
