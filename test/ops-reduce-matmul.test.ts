// Reductions, matmul and views, forward and backward, against the plain references.
import test from 'ava';
import * as kiln from '../src/index.js';
import { checkOp } from './helpers/checkop.js';
import * as R from './helpers/reference.js';

const int32Only = { dtypes: ['int32' as const], grad: false };
const asInt = { grad: false, outDtype: () => 'int32' as const };

// reductions: single, multiple, non-adjacent axes, negative axes, keepdims, everything
checkOp('sum all', [[3, 4]], (a) => a.sum(), (a) => R.reduce(a, 'sum'));
checkOp('sum axis 1', [[3, 4, 2]], (a) => a.sum(1), (a) => R.reduce(a, 'sum', 1));
checkOp('sum axes [0,1] keepdims', [[3, 4, 2]], (a) => a.sum([0, 1], true), (a) => R.reduce(a, 'sum', [0, 1], true));
checkOp('sum non-adjacent axes [0,2]', [[3, 4, 2]], (a) => a.sum([0, 2]), (a) => R.reduce(a, 'sum', [0, 2]));
checkOp('sum axis -1 keepdims', [[2, 3, 4]], (a) => kiln.sum(a, -1, true), (a) => R.reduce(a, 'sum', -1, true));
checkOp('sum of a transposed view', [[3, 4]], (a) => a.T.sum(1), (a) => R.reduce(R.transpose(a), 'sum', 1));
checkOp('mean all', [[3, 4]], (a) => a.mean(), (a) => R.reduce(a, 'mean'));
checkOp('mean axis 0', [[3, 4]], (a) => a.mean(0), (a) => R.reduce(a, 'mean', 0));
checkOp('mean non-adjacent [1,3] keepdims', [[2, 3, 2, 3]], (a) => a.mean([1, 3], true), (a) => R.reduce(a, 'mean', [1, 3], true));
checkOp('max all', [[3, 4]], (a) => a.max(), (a) => R.reduce(a, 'max'));
checkOp('max axis 1', [[3, 5]], (a) => a.max(1), (a) => R.reduce(a, 'max', 1));
checkOp('max non-adjacent [0,2] keepdims', [[3, 2, 4]], (a) => a.max([0, 2], true), (a) => R.reduce(a, 'max', [0, 2], true));
checkOp('max splits the gradient over ties', [{ shape: [2, 3], values: [1, 3, 3, -1, -1, -2] }], (a) => a.max(1), (a) => R.reduce(a, 'max', 1), { grad: false });
checkOp('min axis 0', [[4, 3]], (a) => a.min(0), (a) => R.reduce(a, 'min', 0));
checkOp('min axes [1,2]', [[2, 3, 4]], (a) => a.min([1, 2]), (a) => R.reduce(a, 'min', [1, 2]));
checkOp('logsumexp axis -1', [[3, 5]], (a) => a.logsumexp(-1), (a) => R.reduce(a, 'logsumexp', -1));
checkOp('logsumexp non-adjacent [0,2] keepdims', [[3, 2, 4]], (a) => a.logsumexp([0, 2], true), (a) => R.reduce(a, 'logsumexp', [0, 2], true));
checkOp('logsumexp of large values is stable', [{ shape: [2, 4], low: 500, high: 520 }], (a) => a.logsumexp(1), (a) => R.reduce(a, 'logsumexp', 1),
  { tol: { float32: { atol: 1e-4, rtol: 1e-6 } } });
checkOp('sum int32', [[3, 4]], (a) => a.sum(1), (a) => R.reduce(a, 'sum', 1), int32Only);
checkOp('max int32', [[3, 4]], (a) => a.max(0), (a) => R.reduce(a, 'max', 0), int32Only);
checkOp('mean int32 gives float32', [[3, 4]], (a) => a.mean(1), (a) => R.reduce(a, 'mean', 1), { ...int32Only, outDtype: () => 'float32' });
checkOp('argmax axis 1', [[4, 5]], (a) => a.argmax(1), (a) => R.argmax(a, 1), asInt);
checkOp('argmax axis 0 keepdims', [[4, 5]], (a) => a.argmax(0, true), (a) => R.reshape(R.argmax(a, 0), [1, 5]), asInt);
checkOp('argmax all (flat index)', [[3, 4]], (a) => a.argmax(), (a) => R.argmax(R.reshape(a, [12]), 0), asInt);
checkOp('argmax int32', [[3, 4]], (a) => a.argmax(1), (a) => R.argmax(a, 1), { dtypes: ['int32'], grad: false });

// matmul
checkOp('matmul 2-D', [[3, 4], [4, 5]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul batched', [[2, 3, 4], [2, 4, 5]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul broadcast batch [2,1,3,4]@[3,4,5]', [[2, 1, 3, 4], [3, 4, 5]], (a, b) => kiln.matmul(a, b), R.matmul);
// A broadcast batch dim next to a size-1 one: b's batch does not collapse into one stride (it did, wrongly).
checkOp('matmul broadcast [2,1,2,3,5]@[2,5,4]', [[2, 1, 2, 3, 5], [2, 5, 4]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul broadcast [2,1,2,3,5]@(a [2,5,4] view of [3,5,4])', [[2, 1, 2, 3, 5], [3, 5, 4]], (a, b) => a.matmul(b.narrow(0, 0, 2)),
  (a, b) => R.matmul(a, R.narrow(b, 0, 0, 2)));
checkOp('matmul broadcast [3,4,5]@[2,1,5,2] (a strided, b broadcast inside)', [[3, 4, 5], [2, 1, 5, 2]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul [2,3,4]@[4,5] (rows stacked into one GEMM)', [[2, 3, 4], [4, 5]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul [3,4]@[2,4,5] (left operand broadcast)', [[3, 4], [2, 4, 5]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul A^T via transpose view', [[4, 3], [4, 5]], (a, b) => a.transpose().matmul(b), (a, b) => R.matmul(R.transpose(a), b));
checkOp('matmul B^T via transpose view', [[3, 4], [5, 4]], (a, b) => a.matmul(b.transpose()), (a, b) => R.matmul(a, R.transpose(b)));
checkOp('matmul A^T B^T', [[4, 3], [5, 4]], (a, b) => a.T.matmul(b.T), (a, b) => R.matmul(R.transpose(a), R.transpose(b)));
checkOp('matmul batched transposed views', [[2, 4, 3], [2, 5, 4]], (a, b) => a.transpose(-1, -2).matmul(b.transpose(1, 2)),
  (a, b) => R.matmul(R.transpose(a), R.transpose(b)));
checkOp('matmul on a narrowed view', [[3, 6], [4, 5]], (a, b) => a.narrow(1, 1, 4).matmul(b), (a, b) => R.matmul(R.narrow(a, 1, 1, 4), b));
checkOp('matmul vector @ matrix', [[4], [4, 5]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul matrix @ vector', [[3, 4], [4]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul vector @ vector', [[4], [4]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul batched @ vector', [[2, 3, 4], [4]], (a, b) => a.matmul(b), R.matmul);
checkOp('matmul K=64 accumulates accurately', [[5, 64], [64, 7]], (a, b) => a.matmul(b), R.matmul, { tol: { float32: { atol: 1e-4, rtol: 1e-4 } } });
checkOp('matmul float32 @ float64 promotes', [[3, 4]], (a) => a.matmul(kiln.ones([4, 2], { dtype: 'float64', device: a.device })),
  (a) => R.matmul(a, R.ref(new Array(8).fill(1), [4, 2])), { dtypes: ['float32'], outDtype: () => 'float64' });

// views (gradients flow back through each)
checkOp('permute', [[2, 3, 4]], (a) => a.permute([2, 0, 1]).contiguous(), (a) => R.permute(a, [2, 0, 1]));
checkOp('transpose then reshape (copies)', [[3, 4]], (a) => a.T.reshape([2, 6]), (a) => R.reshape(R.transpose(a), [2, 6]));
checkOp('narrow', [[3, 5]], (a) => a.narrow(1, 1, 3).mul(1), (a) => R.narrow(a, 1, 1, 3));
checkOp('slice with negative start', [[4, 3]], (a) => a.slice(0, -2).mul(1), (a) => R.narrow(a, 0, 2, 2));
checkOp('expand', [[1, 4]], (a) => a.expand([3, 4]).mul(1), (a) => R.zipN([a, R.ref(new Array(12).fill(0), [3, 4])], (v) => v));
checkOp('unsqueeze/squeeze', [[3, 4]], (a) => a.unsqueeze(1).mul(2).squeeze(1), (a) => R.map(a, (v) => 2 * v));
checkOp('flatten', [[2, 3, 4]], (a) => a.flatten(1).mul(1), (a) => R.reshape(a, [2, 12]));

test('matmul reads transposed views in place: only the output is allocated', (t) => {
  kiln.noGrad(() =>
    kiln.tidy(() => {
      const a = kiln.randn([64, 32]), b = kiln.randn([48, 64]);
      const ab = kiln.randn([3, 64, 32]), bb = kiln.randn([3, 48, 64]);
      for (const [x, y, what] of [[a.T, b.T, '2-D'], [ab.transpose(-1, -2), bb.transpose(1, 2), 'batched']] as const) {
        const id0 = kiln.Tensor.peekNextId();
        const bytes0 = kiln.memory().bytes;
        const out = x.matmul(y);
        t.is(kiln.Tensor.peekNextId() - id0, 1, `${what}: one new tensor (the output), no contiguous copies`);
        t.is(kiln.memory().bytes - bytes0, out.size * 4, `${what}: only the output's bytes`);
        const want = R.matmul(R.ref(x.dataSync(), x.shape), R.ref(y.dataSync(), y.shape));
        const got = out.dataSync();
        t.true(got.every((v, i) => Math.abs(v - want.data[i]) < 1e-4 * (1 + Math.abs(want.data[i]))), `${what}: values`);
      }
    }),
  );
});

// empty tensors
checkOp('sum over an empty axis is 0', [[0, 3]], (a) => a.sum(0), (a) => R.reduce(a, 'sum', 0));
checkOp('matmul with K = 0 is all zeros', [[2, 0], [0, 3]], (a, b) => a.matmul(b), R.matmul);
checkOp('add of empty tensors', [[0, 3], [3]], (a, b) => a.add(b), R.add);

test('max/min share the gradient evenly over ties (like torch.amax); logsumexp of an all -inf row is -inf', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([[1, 3, 3], [2, 2, 2]], { requiresGrad: true });
    x.max(1).sum().backward();
    t.deepEqual(Array.from(x.grad!.dataSync()), [0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3].map(Math.fround));
    const y = kiln.tensor([-1, -4, -4], { requiresGrad: true });
    y.min().backward();
    t.deepEqual(Array.from(y.grad!.dataSync()), [0, 0.5, 0.5]);
    t.deepEqual(kiln.tensor([[-Infinity, -Infinity], [0, -Infinity]]).logsumexp(1).toArray(), [-Infinity, 0]);
  });
});
