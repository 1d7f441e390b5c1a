// Autograd semantics (accumulation, noGrad, detach, requiresGrad propagation, shared inputs, views)
// and memory scopes (tidy, keep, using, dispose) with kiln.memory() going back to its baseline.
import test from 'ava';
import * as kiln from '../src/index.js';
import { assertClose } from './helpers/checkop.js';

const EXACT = { atol: 1e-12, rtol: 0 };

test('gradients accumulate over two backward calls', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward(); // 2x
    assertClose(t, 'first backward', x.grad!.dataSync(), [2, 4, 6], EXACT);
    x.mul(3).sum().backward(); // + 3
    assertClose(t, 'accumulated', x.grad!.dataSync(), [5, 7, 9], EXACT);
  });
});

test('backward with an explicit upstream gradient', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    x.exp().backward(kiln.tensor([[1, 0], [0, 2]]));
    assertClose(t, 'grad', x.grad!.dataSync(), [Math.E, 0, 0, 2 * Math.exp(4)], { atol: 1e-4, rtol: 1e-6 });
  });
});

test('a tensor used twice (and through two paths) gets the sum of both gradients', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([0.5, -1, 2], { dtype: 'float64', requiresGrad: true });
    // y = x*x + sin-free path: x*3 + exp(x)  -> dy/dx = 2x + 3 + exp(x)
    const y = x.mul(x).add(x.mul(3)).add(x.exp());
    y.sum().backward();
    assertClose(t, 'grad', x.grad!.dataSync(), [0.5, -1, 2].map((v) => 2 * v + 3 + Math.exp(v)), EXACT);
    // a diamond: z = a*b with a = x+1, b = x*2 -> dz/dx = b + 2a = 2x + 2x + 2 = 4x + 2
    const x2 = kiln.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    x2.add(1).mul(x2.mul(2)).sum().backward();
    assertClose(t, 'diamond', x2.grad!.dataSync(), [6, 10], EXACT);
  });
});

test('requiresGrad propagates to results and not to constants', (t) => {
  kiln.tidy(() => {
    const a = kiln.randn([2, 3], { requiresGrad: true });
    const c = kiln.randn([2, 3]);
    t.true(a.requiresGrad && a.isLeaf);
    t.false(c.requiresGrad);
    const y = a.add(c);
    t.true(y.requiresGrad);
    t.false(y.isLeaf);
    t.false(c.mul(2).requiresGrad);
    y.sum().backward();
    t.false(y.isLeaf, 'a backward that frees the graph leaves y a non-leaf');
    t.is(c.grad, null, 'a constant gets no gradient');
    assertClose(t, 'a.grad', a.grad!.dataSync(), new Array(6).fill(1), EXACT);
    t.throws(() => c.sum().backward(), { instanceOf: kiln.KilnError, code: 'NOT_DIFFERENTIABLE' } as any);
    t.throws(() => kiln.tensor([1, 2], { dtype: 'int32' }).requiresGrad_(), { code: 'DTYPE_MISMATCH' } as any);
  });
});

test('noGrad records nothing; enableGrad inside it does', (t) => {
  kiln.tidy(() => {
    const x = kiln.randn([3], { requiresGrad: true });
    const y = kiln.noGrad(() => x.mul(2));
    t.false(y.requiresGrad);
    t.false(kiln.isGradEnabled() === false, 'grad mode restored after noGrad');
    const z = kiln.noGrad(() => {
      t.false(kiln.isGradEnabled());
      return kiln.enableGrad(() => x.mul(2));
    });
    t.true(z.requiresGrad);
    t.throws(() => kiln.noGrad(() => { throw new Error('boom'); }));
    t.true(kiln.isGradEnabled(), 'grad mode restored after a throw');
  });
});

test('detach shares storage but cuts the graph', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const d = x.detach();
    t.false(d.requiresGrad);
    t.is(d.storage, x.storage, 'shares storage');
    // y = x * detach(x): the gradient is detach(x) only, not 2x.
    x.mul(d).sum().backward();
    assertClose(t, 'grad', x.grad!.dataSync(), [1, 2, 3], EXACT);
  });
});

test('backward through views: transpose, narrow, reshape, expand', (t) => {
  kiln.tidy(() => {
    const x = kiln.arange(0, 6, 1, { dtype: 'float64' }).reshape([2, 3]).requiresGrad_();
    const w = kiln.tensor([[1, 10], [100, 1000]], { dtype: 'float64' });
    // x.T[1:3] is rows 1..2 of the transpose = columns 1..2 of x.
    const y = x.T.narrow(0, 1, 2).mul(w).sum();
    y.backward();
    // element x[i][j] lands at T[j][i]; narrowed row r = j - 1.
    assertClose(t, 'grad', x.grad!.dataSync(), [0, 1, 100, 0, 10, 1000], EXACT);
    const v = kiln.tensor([[1], [2]], { dtype: 'float64', requiresGrad: true });
    v.expand([2, 4]).reshape([8]).mul(kiln.arange(0, 8, 1, { dtype: 'float64' })).sum().backward();
    assertClose(t, 'expand grad sums', v.grad!.dataSync(), [0 + 1 + 2 + 3, 4 + 5 + 6 + 7], EXACT);
  });
});

test('retainGraph allows a second backward through the same graph', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([2], { dtype: 'float64', requiresGrad: true });
    const y = x.mul(x).mul(x);
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assertClose(t, 'twice 3x^2', x.grad!.dataSync(), [24], EXACT);
  });
});

test('tidy disposes intermediates, keeps returned tensors, nested results and .grad', (t) => {
  const base = kiln.memory().tensors;
  const w = kiln.randn([4, 3], { requiresGrad: true });
  let inner: kiln.Tensor | null = null;
  const { out, pair } = kiln.tidy(() => {
    const h = kiln.randn([5, 4]).matmul(w).relu();
    inner = h;
    const loss = h.sum();
    loss.backward();
    return { out: loss, pair: [h.mean(), 7] };
  });
  t.true(inner!.isDisposed, 'an intermediate made inside was freed');
  t.false(out.isDisposed);
  t.false((pair[0] as kiln.Tensor).isDisposed, 'tensors nested in the result survive');
  t.truthy(w.grad);
  t.false(w.grad!.isDisposed, 'the leaf gradient survives');
  t.deepEqual(w.grad!.shape, [4, 3]);
  t.is(kiln.memory().tensors, base + 4, 'w, w.grad, out and the mean are all that is left');
  out.dispose();
  (pair[0] as kiln.Tensor).dispose();
  w.dispose();
  t.true(w.grad === null, 'dispose frees the gradient too');
  t.is(kiln.memory().tensors, base);
});

test('tidy disposes everything on a throw, and refuses async functions', (t) => {
  const base = kiln.memory().tensors;
  t.throws(() => kiln.tidy(() => { kiln.ones([100]); kiln.zeros([2000]); throw new Error('inside'); }), { message: 'inside' });
  t.is(kiln.memory().tensors, base);
  t.throws(() => kiln.tidy((async () => kiln.ones([2])) as any), { instanceOf: kiln.KilnError, code: 'INVALID_ARGUMENT' } as any);
  t.is(kiln.memory().tensors, base);
});

test('a backward that throws midway frees the gradients it made, in a scope or not', (t) => {
  const w = kiln.randn([32, 32], { requiresGrad: true }), x = kiln.randn([16, 32]);
  for (const scoped of [false, true]) {
    const xx = x.mul(1), h = xx.matmul(w).tanh(), loss = h.square().sum();
    xx.dispose(); // matmul's backward reads it: the walk fails after the sum, square and tanh steps
    const m0 = kiln.memory();
    const e = t.throws(() => (scoped ? kiln.tidy(() => loss.backward()) : loss.backward()), { instanceOf: kiln.KilnError });
    t.is((e as kiln.KilnError).code, 'DISPOSED');
    const m1 = kiln.memory();
    t.deepEqual([m1.tensors, m1.bytes], [m0.tensors, m0.bytes], `scoped: ${scoped}`);
    t.is(w.grad, null);
    h.dispose();
    loss.dispose();
  }
  w.dispose();
  x.dispose();
});

test('kiln.keep lets a tensor outlive nested scopes', (t) => {
  const base = kiln.memory().tensors;
  let kept: kiln.Tensor | null = null, dropped: kiln.Tensor | null = null;
  kiln.tidy(() => {
    kiln.tidy(() => {
      kept = kiln.keep(kiln.ones([3]).mul(2));
      dropped = kiln.ones([3]);
    });
    t.false(kept!.isDisposed, 'kept survives the inner scope');
    t.true(dropped!.isDisposed);
  });
  t.false(kept!.isDisposed, 'and the outer scope');
  assertClose(t, 'value', kept!.dataSync(), [2, 2, 2], EXACT);
  kept!.dispose();
  t.is(kiln.memory().tensors, base);
});

test('`using` disposes at the end of the block (Symbol.dispose)', (t) => {
  const base = kiln.memory().tensors;
  let ref: kiln.Tensor | null = null;
  {
    using x = kiln.ones([2000]);
    ref = x;
    t.is(kiln.memory().tensors, base + 1);
    t.is(kiln.memory().bytes >= 8000, true);
  }
  t.true(ref!.isDisposed);
  t.is(kiln.memory().tensors, base);
});

test('memory() counts and bytes return to baseline after a training step in a scope', (t) => {
  const m0 = kiln.memory();
  const w = kiln.randn([64, 32], { requiresGrad: true });
  const m1 = kiln.memory();
  t.is(m1.tensors, m0.tensors + 1);
  t.is(m1.bytes, m0.bytes + 64 * 32 * 4);
  for (let step = 0; step < 20; step++) {
    kiln.tidy(() => {
      const x = kiln.randn([16, 64]);
      const y = kiln.randint(0, 32, [16]);
      const loss = kiln.crossEntropy(x.matmul(w).gelu(), y);
      loss.backward();
      t.deepEqual(w.grad!.shape, [64, 32]);
      w.grad!.dispose(); // like optimizer.zeroGrad()
      w.grad = null;
    });
    const m = kiln.memory();
    if (m.tensors !== m1.tensors || m.bytes !== m1.bytes) return t.fail(`step ${step}: ${m.tensors} tensors, ${m.bytes} bytes`);
  }
  t.pass();
  w.dispose();
  t.deepEqual([kiln.memory().tensors, kiln.memory().bytes], [m0.tensors, m0.bytes]);
});

test('views keep shared storage alive until the last one is disposed', (t) => {
  const base = kiln.memory();
  const x = kiln.randn([40, 40]);
  const v = x.T;
  x.dispose();
  t.false(v.isDisposed);
  const total = kiln.tidy(() => v.sum().item()); // still readable
  t.true(Number.isFinite(total));
  t.is(kiln.memory().bytes, base.bytes + 40 * 40 * 4, 'the storage is still held by the view');
  v.dispose();
  t.is(kiln.memory().bytes, base.bytes, 'freed with the last view');
  t.is(kiln.memory().tensors, base.tensors);
});
