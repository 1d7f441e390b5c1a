// Neural-network ops and the concat/split/indexing family, forward and backward, against the plain
// references; dropout by its statistics.
import test from 'ava';
import * as kiln from '../src/index.js';
import { checkOp } from './helpers/checkop.js';
import * as R from './helpers/reference.js';

// softmax / logSoftmax
checkOp('softmax last axis', [[3, 5]], (a) => a.softmax(), (a) => R.softmax(a));
checkOp('softmax axis 1 of 3-D (non-last)', [[2, 3, 4]], (a) => a.softmax(1), (a) => R.softmax(a, 1));
checkOp('softmax axis 0', [[4, 3]], (a) => kiln.softmax(a, 0), (a) => R.softmax(a, 0));
checkOp('softmax of large logits is stable', [{ shape: [2, 4], low: 900, high: 1000 }], (a) => a.softmax(), (a) => R.softmax(a), { grad: false });
checkOp('logSoftmax last axis', [[3, 5]], (a) => a.logSoftmax(), (a) => R.logSoftmax(a));
checkOp('logSoftmax axis 0 of 3-D', [[3, 2, 4]], (a) => a.logSoftmax(0), (a) => R.logSoftmax(a, 0));
checkOp('logSoftmax on a transposed view', [[5, 3]], (a) => a.T.logSoftmax(-1), (a) => R.logSoftmax(R.transpose(a)));

// layerNorm
checkOp('layerNorm with weight and bias', [[4, 6], [6], [6]], (x, w, b) => kiln.layerNorm(x, 6, w, b), (x, w, b) => R.layerNorm(x, 1, w, b));
checkOp('layerNorm without weight and bias', [[3, 5]], (x) => kiln.layerNorm(x, 5), (x) => R.layerNorm(x, 1));
checkOp('layerNorm weight only, 3-D input', [[2, 3, 4], [4]], (x, w) => kiln.layerNorm(x, 4, w), (x, w) => R.layerNorm(x, 1, w));
checkOp('layerNorm over two trailing dims', [[2, 3, 4], [3, 4], [3, 4]], (x, w, b) => kiln.layerNorm(x, [3, 4], w, b),
  (x, w, b) => R.layerNorm(x, 2, w, b));
checkOp('layerNorm eps 0.1', [[3, 4]], (x) => kiln.layerNorm(x, 4, null, null, 0.1), (x) => R.layerNorm(x, 1, undefined, undefined, 0.1));
checkOp('layerNorm of a transposed view', [[5, 3], [5]], (x, w) => kiln.layerNorm(x.T, 5, w), (x, w) => R.layerNorm(R.transpose(x), 1, w));

// embedding (repeated indices exercise the scatter-add in backward)
checkOp('embedding', [[6, 3], { ints: [0, 5, 2, 2, 5, 5, 1, 0], shape: [2, 4] }], (w, i) => kiln.embedding(w, i), R.embedding);
checkOp('embedding 1-D indices', [[4, 2], { int: [0, 4], shape: [7] }], (w, i) => kiln.embedding(w, i), R.embedding);

// crossEntropy
const tgt = { ints: [0, 3, -100, 2, 1, 3], shape: [6] };
checkOp('crossEntropy mean', [[6, 4], { ints: [0, 3, 1, 2, 1, 3], shape: [6] }], (l, t) => kiln.crossEntropy(l, t), (l, t) => R.crossEntropy(l, t));
checkOp('crossEntropy ignore index -100 (default)', [[6, 4], tgt], (l, t) => kiln.crossEntropy(l, t), (l, t) => R.crossEntropy(l, t));
checkOp('crossEntropy custom ignore index', [[6, 4], { ints: [0, 3, 1, 2, 1, 3], shape: [6] }], (l, t) => kiln.crossEntropy(l, t, { ignoreIndex: 3 }),
  (l, t) => R.crossEntropy(l, t, { ignoreIndex: 3 }));
checkOp('crossEntropy reduction sum', [[6, 4], tgt], (l, t) => kiln.crossEntropy(l, t, { reduction: 'sum' }), (l, t) => R.crossEntropy(l, t, { reduction: 'sum' }));
checkOp('crossEntropy reduction none', [[6, 4], tgt], (l, t) => kiln.crossEntropy(l, t, { reduction: 'none' }), (l, t) => R.crossEntropy(l, t, { reduction: 'none' }));
checkOp('crossEntropy label smoothing 0.1', [[6, 4], tgt], (l, t) => kiln.crossEntropy(l, t, { labelSmoothing: 0.1 }),
  (l, t) => R.crossEntropy(l, t, { labelSmoothing: 0.1 }));
checkOp('crossEntropy label smoothing, sum', [[6, 4], tgt], (l, t) => kiln.crossEntropy(l, t, { labelSmoothing: 0.3, reduction: 'sum' }),
  (l, t) => R.crossEntropy(l, t, { labelSmoothing: 0.3, reduction: 'sum' }));
checkOp('crossEntropy 3-D logits [2,3,5]', [[2, 3, 5], { int: [0, 5], shape: [2, 3] }], (l, t) => kiln.crossEntropy(l, t), (l, t) => R.crossEntropy(l, t));
checkOp('crossEntropy of a transposed view', [[4, 6], { int: [0, 4], shape: [6] }], (l, t) => kiln.crossEntropy(l.T, t), (l, t) => R.crossEntropy(R.transpose(l), t));

// mse
checkOp('mseLoss mean', [[3, 4], [3, 4]], (a, b) => kiln.mseLoss(a, b), (a, b) => R.mse(a, b));
checkOp('mseLoss sum', [[3, 4], [3, 4]], (a, b) => kiln.mseLoss(a, b, 'sum'), (a, b) => R.mse(a, b, 'sum'));
checkOp('mseLoss none, broadcast target', [[3, 4], [4]], (a, b) => kiln.mseLoss(a, b, 'none'), (a, b) => R.mse(a, b, 'none'));

// concat, stack, split
checkOp('concat axis 0', [[2, 3], [4, 3]], (a, b) => kiln.concat([a, b], 0), (a, b) => R.concat([a, b], 0));
checkOp('concat axis 1 of three', [[2, 1], [2, 3], [2, 2]], (a, b, c) => kiln.concat([a, b, c], 1), (a, b, c) => R.concat([a, b, c], 1));
checkOp('concat int32', [[2, 3], [1, 3]], (a, b) => kiln.concat([a, b], 0), (a, b) => R.concat([a, b], 0), { dtypes: ['int32'], grad: false });
checkOp('stack axis 0', [[2, 3], [2, 3]], (a, b) => kiln.stack([a, b]), (a, b) => R.stack([a, b], 0));
checkOp('stack axis -1', [[2, 3], [2, 3], [2, 3]], (a, b, c) => kiln.stack([a, b, c], -1), (a, b, c) => R.stack([a, b, c], 2));
checkOp('split sizes [1,3,1], middle part', [[2, 5]], (a) => kiln.split(a, [1, 3, 1], 1)[1].mul(1), (a) => R.narrow(a, 1, 1, 3));
checkOp('split by chunk size, last chunk smaller', [[5, 2]], (a) => kiln.concat(kiln.split(a, 2).map((p, i) => p.mul(i + 1)), 0),
  (a) => R.zipN([a, R.ref([1, 1, 1, 1, 2, 2, 2, 2, 3, 3], [5, 2])], (x, s) => x * s));

// indexing
checkOp('topk values', [[3, 6]], (a) => a.topk(2).values, (a) => R.topk(a, 2).values);
checkOp('topk smallest values', [[3, 6]], (a) => kiln.topk(a, 3, false).values, (a) => R.topk(a, 3, false).values);
checkOp('topk indices', [[3, 6]], (a) => a.topk(4).indices, (a) => R.topk(a, 4).indices, { grad: false, outDtype: () => 'int32' });
checkOp('topk int32', [[2, 5]], (a) => a.topk(2).values, (a) => R.topk(a, 2).values, { dtypes: ['int32'], grad: false });
checkOp('oneHot', [{ ints: [0, 2, 4, 1], shape: [2, 2] }], (i) => kiln.oneHot(i, 5), (i) => R.oneHot(i, 5),
  { dtypes: ['float32'], outDtype: () => 'float32' });
checkOp('cumsum axis 1', [[3, 4]], (a) => a.cumsum(1), (a) => R.cumsum(a, 1));
checkOp('cumsum axis 0 of 3-D', [[3, 2, 2]], (a) => kiln.cumsum(a, 0), (a) => R.cumsum(a, 0));
checkOp('cumsum reverse', [[2, 5]], (a) => kiln.cumsum(a, -1, true), (a) => R.cumsum(a, -1, true));
checkOp('cumsum int32 stays int32', [[2, 4]], (a) => a.cumsum(1), (a) => R.cumsum(a, 1), { dtypes: ['int32'], grad: false });

// dropout: a random op, so its statistics rather than a reference
test('dropout zeroes a fraction p, scales survivors by 1/(1-p), and is reproducible by seed', (t) => {
  kiln.tidy(() => {
    const x = kiln.ones([200, 100]);
    for (const p of [0.1, 0.5, 0.8]) {
      kiln.manualSeed(7);
      const y = Array.from(kiln.dropout(x, p).dataSync());
      const zeros = y.filter((v) => v === 0).length / y.length;
      // 20,000 Bernoulli draws: 5 standard deviations is at most 0.018.
      t.true(Math.abs(zeros - p) < 5 * Math.sqrt((p * (1 - p)) / y.length), `p=${p}: zeroed fraction ${zeros}`);
      const kept = y.filter((v) => v !== 0);
      t.true(kept.every((v) => Math.abs(v - 1 / (1 - p)) < 1e-6), `p=${p}: survivors are scaled by 1/(1-p)`);
      t.true(Math.abs(kept.reduce((s, v) => s + v, 0) / y.length - 1) < 0.05, `p=${p}: the mean is preserved`);
      kiln.manualSeed(7);
      t.deepEqual(Array.from(kiln.dropout(x, p).dataSync()), y, `p=${p}: the same seed gives the same mask`);
      kiln.manualSeed(8);
      t.notDeepEqual(Array.from(kiln.dropout(x, p).dataSync()), y, `p=${p}: another seed gives another mask`);
    }
  });
});

test('dropout: p=0 and eval mode are the identity, p=1 zeroes everything', (t) => {
  kiln.tidy(() => {
    const x = kiln.randn([4, 5]);
    t.deepEqual(kiln.dropout(x, 0).toArray(), x.toArray());
    t.deepEqual(kiln.dropout(x, 0.7, false).toArray(), x.toArray());
    t.true(Array.from(kiln.dropout(x, 1).dataSync()).every((v) => v === 0));
  });
});

test('dropout backward uses the same mask as forward', (t) => {
  kiln.tidy(() => {
    kiln.manualSeed(3);
    const x = kiln.randn([50, 40], { requiresGrad: true });
    const y = kiln.dropout(x, 0.4);
    y.sum().backward();
    const yv = y.dataSync(), g = x.grad!.dataSync(), xv = x.dataSync();
    for (let i = 0; i < yv.length; i++) {
      const want = yv[i] === 0 && xv[i] !== 0 ? 0 : 1 / 0.6;
      if (Math.abs(g[i] - want) > 1e-6) return t.fail(`element ${i}: grad ${g[i]}, want ${want}`);
    }
    t.pass();
  });
});

test('crossEntropy with every target ignored: NaN loss (0/0, like PyTorch) and zero gradient', (t) => {
  kiln.tidy(() => {
    const l = kiln.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    const ce = kiln.crossEntropy(l, kiln.tensor(Int32Array.from([-100, -100])));
    t.true(Number.isNaN(ce.item()));
    ce.backward();
    t.deepEqual(Array.from(l.grad!.dataSync()), [0, 0, 0, 0]);
  });
});

test('topk and argmax break ties toward the lower index', (t) => {
  kiln.tidy(() => {
    const x = kiln.tensor([[1, 3, 3, 2], [5, 5, 5, 5]]);
    t.deepEqual(x.topk(2).indices.toArray(), [[1, 2], [0, 1]]);
    t.deepEqual(x.argmax(1).toArray(), [1, 0]);
  });
});
