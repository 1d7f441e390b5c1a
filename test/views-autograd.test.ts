// Views, autograd through views and freed graphs, and the temporaries of mixed-dtype ops: cases
// found by comparing random view chains (values and gradients) with PyTorch 1.13; the expected
// numbers are PyTorch's (or closed forms it agrees with).
import test from 'ava';
import * as kiln from '../src/index.js';

const throwsCode = (t: any, fn: () => unknown, code: kiln.KilnErrorCode, ...parts: string[]) => {
  const e = t.throws(fn, { instanceOf: kiln.KilnError }) as kiln.KilnError | undefined;
  if (!e) return;
  t.is(e.code, code, e.message);
  for (const p of parts) t.true(e.message.includes(p), `message '${e.message}' should name '${p}'`);
};

test('topk backward through an input with no rows gives an empty or zero gradient', (t) => {
  kiln.tidy(() => {
    // torch: x = zeros(3, 0, 4, requires_grad=True); x.topk(2).values.sum().backward() -> x.grad.shape (3, 0, 4)
    const x = kiln.zeros([3, 0, 4], { requiresGrad: true });
    const v = x.topk(2).values;
    t.deepEqual(v.shape, [3, 0, 2]);
    v.sum().backward();
    t.deepEqual(x.grad!.shape, [3, 0, 4]);
    // A row-less narrow in the chain: the leaf gets zeros (torch: zeros(2, 3)).
    const y = kiln.tensor([[1, 5, 3], [4, 0, 9]], { requiresGrad: true });
    y.narrow(0, 2, 0).topk(1, false).values.mul(3).sum().backward();
    t.deepEqual(y.grad!.toArray(), [[0, 0, 0], [0, 0, 0]]);
  });
});

test('flatten refuses startDim after endDim instead of inserting a dimension', (t) => {
  kiln.tidy(() => {
    // torch.zeros(2, 3).flatten(1, 0): RuntimeError (start_dim cannot come after end_dim); kiln gave shape [2, 1, 3].
    throwsCode(t, () => kiln.flatten(kiln.zeros([2, 3]), 1, 0), 'INVALID_ARGUMENT', 'flatten', '[2, 3]');
    throwsCode(t, () => kiln.zeros([2, 3, 4]).flatten(-1, -2), 'INVALID_ARGUMENT', 'flatten', '[2, 3, 4]');
    t.deepEqual(kiln.zeros([2, 3, 4]).flatten(-2, -1).shape, [2, 12]);
    t.deepEqual(kiln.zeros([2, 3, 4]).flatten(1, 1).shape, [2, 3, 4]);
  });
});

test('stack and concat refuse null entries and array holes with a KilnError', (t) => {
  kiln.tidy(() => {
    const a = kiln.ones([2]);
    throwsCode(t, () => kiln.stack([null as any]), 'INVALID_ARGUMENT', 'stack', 'tensor 0');
    throwsCode(t, () => kiln.stack([undefined as any, a]), 'INVALID_ARGUMENT', 'stack', 'tensor 0');
    // eslint-disable-next-line no-sparse-arrays
    throwsCode(t, () => kiln.concat([a, , a] as any), 'INVALID_ARGUMENT', 'concat', 'tensor 1');
    // eslint-disable-next-line no-sparse-arrays
    throwsCode(t, () => kiln.stack([a, , a] as any), 'INVALID_ARGUMENT', 'stack', 'tensor 1');
  });
});

test('squeeze of a dimension that is not 1 and transpose of a 1-D tensor are new views', (t) => {
  const x = kiln.tensor([[1, 2, 3]], { requiresGrad: true });
  const s = x.squeeze(1), v = kiln.tensor([1, 2]), tv = v.transpose();
  t.not(s, x);
  t.not(tv, v);
  s.dispose();
  tv.dispose();
  t.false(x.isDisposed, 'disposing the squeeze result leaves its input alone');
  t.false(v.isDisposed, 'disposing the transpose result leaves its input alone');
  t.deepEqual(v.toArray(), [1, 2]);
  kiln.tidy(() => x.squeeze(0).squeeze(0).transpose().mul(kiln.tensor([1, 2, 3])).sum().backward());
  t.deepEqual(x.grad!.toArray(), [[1, 2, 3]]);
  x.dispose();
  v.dispose();
});

test('backward refuses an intermediate disposed before the pass (its inputs got no gradient)', (t) => {
  const w = kiln.tensor([1, 2, 3, 4], { requiresGrad: true });
  const x = kiln.tensor([[1, 2], [3, 4]]);
  // The tidy disposes w.reshape(...) and the product; backward outside it used to leave w.grad null.
  const loss = kiln.tidy(() => w.reshape([2, 2]).mul(x).sum());
  const before = kiln.memory().tensors;
  throwsCode(t, () => loss.backward(), 'DISPOSED', 'backward', 'mul', '[2, 2]', 'tidy');
  t.is(kiln.memory().tensors, before, 'the refused pass made nothing');
  t.is(w.grad, null);
  // A disposed view on the path.
  const v = w.reshape([2, 2]);
  const y = v.transpose(0, 1).mul(x).sum();
  v.dispose();
  throwsCode(t, () => y.backward(), 'DISPOSED', 'reshape', '[2, 2]');
  t.is(w.grad, null);
  // Kept alive, the same graph gives PyTorch's gradient (x transposed back, flattened).
  kiln.tidy(() => w.reshape([2, 2]).transpose(0, 1).mul(x).sum().backward());
  t.deepEqual(Array.from(w.grad!.dataSync()), [1, 3, 2, 4]);
  for (const z of [w, x, loss, y]) z.dispose();
});

test('a second backward through a freed graph is refused unless the first retained it', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([1, 2, 3], { requiresGrad: true });
    // y = sum over two rows of x*x: dy/dx = 4x (torch: [4, 8, 12]).
    const y = x.expand([2, 3]).mul(x).sum();
    y.backward();
    t.deepEqual(Array.from(x.grad!.dataSync()), [4, 8, 12]);
    // torch: RuntimeError (Trying to backward through the graph a second time); kiln set y.grad to 1 and gave x nothing.
    throwsCode(t, () => y.backward(), 'INVALID_ARGUMENT', 'backward', 'sum', 'retainGraph');
    t.is(y.grad, null);
    t.deepEqual(Array.from(x.grad!.dataSync()), [4, 8, 12]);
    // A tensor of the freed graph inside a new graph: refused too (kiln took it for a leaf).
    const h = x.mul(2);
    h.sum().backward();
    throwsCode(t, () => h.mul(3).sum().backward(), 'INVALID_ARGUMENT', 'mul', '[3]');
    t.is(h.grad, null);
    t.deepEqual(Array.from(x.grad!.dataSync()), [6, 10, 14]);
    // retainGraph: the second pass accumulates (torch: [8, 16, 24]).
    const z = kiln.tensor([1, 2, 3], { requiresGrad: true });
    const yz = z.expand([2, 3]).mul(z).sum();
    yz.backward(undefined, { retainGraph: true });
    yz.backward();
    t.deepEqual(Array.from(z.grad!.dataSync()), [8, 16, 24]);
  });
});

test('mul and div by a number keep the sign of zero, in every float dtype', (t) => {
  kiln.tidy(() => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      const x = kiln.tensor([-0, 0, -2], { dtype });
      // torch: tensor([-0., 0., -2.]) * 0.5 -> [-0., 0., -1.]; / 3 -> [-0., 0., -0.6667]
      const m = Array.from(x.mul(0.5).dataSync()), d = Array.from(x.div(3).dataSync()), r = Array.from(kiln.mul(4, x).dataSync());
      t.true(Object.is(m[0], -0) && Object.is(m[1], 0) && m[2] === -1, `${dtype} mul: ${m}`);
      t.true(Object.is(d[0], -0) && Object.is(d[1], 0), `${dtype} div: ${d}`);
      t.true(Object.is(r[0], -0) && Object.is(r[1], 0) && r[2] === -8, `${dtype} scalar * x: ${r}`);
      t.is(1 / x.mul(2).to('float32').dataSync()[0], -Infinity);
    }
  });
});

test('ops free their promoted copies and scalar operands when no graph reads them', (t) => {
  const i32 = kiln.tensor([1, 2, 3], { dtype: 'int32' });
  const f = kiln.tensor([0.1, 0.2, 0.3]);
  const h = kiln.tensor([0.5, 1.5, 2.5], { dtype: 'float16' });
  const idx = kiln.tensor([[0, 1], [2, 0]], { dtype: 'int32' }), idxT = idx.T;
  const mat = kiln.tensor([[1, 2, 3], [4, 5, 6]]), mat64 = kiln.tensor(new Float64Array(6), { shape: [3, 2] });
  const base = kiln.memory().tensors;
  // Outside any scope: each result is disposed at once, so the count must come back to base.
  const ops: [string, () => kiln.Tensor][] = [
    ['eq with a number', () => kiln.eq(f, 1)], ['lt float16 with float32', () => kiln.lt(h, f)],
    ['add int32 and float32', () => kiln.add(i32, f)], ['mul int32 and float16', () => kiln.mul(i32, h)],
    ['maximum with a number', () => kiln.maximum(f, 0)], ['div int32 by int32', () => kiln.div(i32, i32)],
    ['div int32 by a number', () => kiln.div(i32, 2)], ['add a fraction to int32', () => kiln.add(i32, 0.5)],
    ['pow int32', () => kiln.pow(i32, 2)], ['exp int32', () => kiln.exp(i32)], ['clamp int32', () => kiln.clamp(i32, 0.5, 2)],
    ['where with a number', () => kiln.where(i32, f, 0)], ['maskedFill', () => kiln.maskedFill(f, i32, 0)],
    ['mean int32', () => kiln.mean(i32)], ['logsumexp int32', () => kiln.logsumexp(i32)], ['cumsum int32', () => kiln.cumsum(i32, 0)],
    ['oneHot of a transposed view', () => kiln.oneHot(idxT, 3)], ['stack', () => kiln.stack([f, f], 1)],
    ['matmul vector by vector', () => kiln.matmul(f, f)], ['matmul matrix by vector', () => kiln.matmul(mat, f)],
    ['matmul float32 vector by float64 matrix', () => kiln.matmul(f, mat64)],
  ];
  for (const [name, op] of ops) {
    op().dispose();
    t.is(kiln.memory().tensors, base, name);
  }
  // Values unchanged: [1, 3, 6] (torch.cumsum), oneHot rows of idx.T = [[0, 2], [1, 0]].
  const c = kiln.cumsum(i32, 0), o = kiln.oneHot(idxT, 3);
  t.deepEqual(c.toArray(), [1, 3, 6]);
  t.deepEqual(o.toArray(), [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [1, 0, 0]]]);
  // With a graph the operands stay until backward has read them.
  const w = kiln.tensor([1, 2, 3], { requiresGrad: true });
  kiln.tidy(() => kiln.mul(w, h).add(kiln.stack([w, w]).sum(0)).sum().backward());
  t.deepEqual(Array.from(w.grad!.dataSync()), [2.5, 3.5, 4.5]);
  for (const z of [i32, f, h, idx, idxT, c, o, w, mat, mat64]) z.dispose();
});
