// nn: module bookkeeping, layers against closed forms, finite-difference gradients in float64
// through a whole GPT, causality of attention, GPT-2 initialisation statistics.
import test from 'ava';
import * as kiln from '../src/index.js';
const { nn } = kiln;

/** Central differences on a few elements of every parameter of a float64 model. */
function fdCheck(t: any, model: kiln.nn.Module, loss: () => kiln.Tensor, perParam = 3, eps = 1e-6): number {
  model.zeroGrad();
  loss().backward();
  let worst = 0;
  for (const [name, p] of model.namedParameters()) {
    const grad = p.grad!.dataSync();
    for (let k = 0; k < perParam; k++) {
      const i = Math.floor(((k + 1) * 7919) % p.size);
      const vals = p.dataSync() as Float64Array;
      const set = (v: number) => {
        vals[i] = v;
        nn.copyInto(p, kiln.tensor(vals, { shape: p.shape.slice(), dtype: 'float64' }));
      };
      const orig = vals[i];
      set(orig + eps);
      const up = kiln.tidy(() => kiln.noGrad(() => loss().item()));
      set(orig - eps);
      const down = kiln.tidy(() => kiln.noGrad(() => loss().item()));
      set(orig);
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - grad[i]) / Math.max(1e-3, Math.abs(numeric));
      worst = Math.max(worst, err);
      t.true(err < 1e-4, `${name}[${i}]: analytic ${grad[i]} numeric ${numeric}`);
    }
  }
  return worst;
}

test('Linear computes x W^T + b with PyTorch layout and default init bounds', (t) => {
  kiln.manualSeed(0);
  const l = new nn.Linear(4, 3);
  t.deepEqual(l.weight.shape, [3, 4]);
  t.deepEqual(l.bias!.shape, [3]);
  t.true((l.weight.abs().max().item() as number) <= 0.5);
  nn.copyInto(l.weight, kiln.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]]));
  nn.copyInto(l.bias!, kiln.tensor([0.5, -0.5, 0]));
  const y = l.forward(kiln.tensor([[[1, 2, 3, 4]], [[0, 0, 0, 1]]]));
  t.deepEqual(y.toArray(), [[[1.5, 1.5, 10]], [[0.5, -0.5, 1]]]);
  t.is(new nn.Linear(2, 2, { bias: false }).bias, null);
});

test('Module: names, tied weights once, train/eval, zeroGrad, to(dtype)', (t) => {
  const m = new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 8, vocabSize: 11, blockSize: 4 });
  const names = m.namedParameters().map(([n]) => n);
  t.is(names[0], 'wte.weight');
  t.true(names.includes('h.1.mlp.cProj.bias'));
  t.is(names.filter((n) => n.endsWith('weight') && n.startsWith('wte')).length, 1);
  t.is(m.numParameters(), 11 * 8 + 4 * 8 + 2 * (2 * 8 + 2 * 8 + 3 * 8 * 8 + 3 * 8 + 8 * 8 + 8 + 4 * 8 * 8 + 4 * 8 + 4 * 8 * 8 + 8) + 16);
  m.eval();
  t.false(m.h[1].attn.residDrop.training);
  m.train();
  t.true(m.h[1].attn.residDrop.training);
  const x = kiln.tensor([[1, 2, 3, 4]], { dtype: 'int32' });
  kiln.crossEntropy(m.forward(x).reshape([-1, 11]), x.reshape([-1])).backward();
  t.true(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  t.true(m.parameters().every((p) => p.grad === null));
  m.to('float64');
  t.true(m.parameters().every((p) => p.dtype === 'float64' && p.requiresGrad));
  t.is(m.lnF.weight!.dtype, 'float64');
  t.is(m.forward(x).dtype, 'float64');
  const e = t.throws(() => m.forward(kiln.tensor([[1, 2, 3, 4, 5]], { dtype: 'int32' }))) as kiln.KilnError;
  t.is(e.code, 'SHAPE_MISMATCH');
});

test('parameters survive tidy scopes; Dropout is identity in eval and scales by 1/(1-p) in train', (t) => {
  const l = kiln.tidy(() => new nn.Linear(3, 3));
  t.false(l.weight.isDisposed);
  const d = new nn.Dropout(0.25);
  const x = kiln.ones([1000]);
  const y = d.forward(x).dataSync();
  const kept = Array.from(y).filter((v) => v !== 0);
  t.true(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
  t.true(Math.abs(kept.length / 1000 - 0.75) < 0.06);
  d.eval();
  t.is(d.forward(x), x);
});

test('LayerNorm, GELU, ReLU, MLP against closed forms', (t) => {
  const ln = new nn.LayerNorm(4);
  const y = ln.forward(kiln.tensor([[1, 2, 3, 4]])).dataSync();
  const mean = 2.5, sd = Math.sqrt(1.25 + 1e-5);
  [1, 2, 3, 4].forEach((v, i) => t.true(Math.abs(y[i] - (v - mean) / sd) < 1e-5));
  const g = new nn.GELU('tanh').forward(kiln.tensor([1])).item();
  t.true(Math.abs(g - 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (1 + 0.044715)))) < 1e-6);
  t.deepEqual(new nn.ReLU().forward(kiln.tensor([-1, 2])).toArray(), [0, 2]);
  const mlp = new nn.MLP(3, { hidden: 5, activation: 'relu' });
  t.deepEqual(mlp.forward(kiln.zeros([2, 3])).shape, [2, 3]);
  t.deepEqual(mlp.cFc.weight.shape, [5, 3]);
});

test('GPT gradients match finite differences in float64 (token and vector modes)', (t) => {
  kiln.manualSeed(7);
  const tok = new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 8, vocabSize: 7, blockSize: 5, dtype: 'float64' });
  // Break the symmetric init so every gradient is exercised.
  for (const p of tok.parameters()) nn.normal_(p, 0, 0.3);
  const x = kiln.randint(0, 7, [2, 5]);
  const y = kiln.randint(0, 7, [10]);
  const w1 = fdCheck(t, tok, () => kiln.crossEntropy(tok.forward(x).reshape([-1, 7]), y));
  kiln.manualSeed(8);
  const vec = new nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 8, inputDim: 3, outputDim: 2, blockSize: 4, dtype: 'float64' });
  for (const p of vec.parameters()) nn.normal_(p, 0, 0.3);
  const xs = kiln.randn([2, 4, 3], { dtype: 'float64' });
  const ys = kiln.randn([2, 4, 2], { dtype: 'float64' });
  const w2 = fdCheck(t, vec, () => kiln.mseLoss(vec.forward(xs), ys));
  t.log(`worst relative error: tokens ${w1.toExponential(2)}, vectors ${w2.toExponential(2)}`);
});

test('causal attention: outputs never depend on later positions; non-causal ones do', (t) => {
  kiln.manualSeed(3);
  for (const causal of [true, false]) {
    const attn = new nn.MultiheadAttention(8, 2, { causal });
    const x = kiln.randn([1, 5, 8]);
    const y1 = attn.forward(x).dataSync();
    const x2 = kiln.concat([x.narrow(1, 0, 4), kiln.randn([1, 1, 8])], 1);
    const y2 = attn.forward(x2).dataSync();
    const firstFourSame = Array.from(y1.slice(0, 32)).every((v, i) => Math.abs(v - y2[i]) < 1e-6);
    t.is(firstFourSame, causal);
  }
});

test('attention matches a hand-written softmax(QK^T/sqrt(d))V', (t) => {
  kiln.manualSeed(4);
  const q = kiln.randn([1, 1, 3, 2]), k = kiln.randn([1, 1, 3, 2]), v = kiln.randn([1, 1, 3, 2]);
  const out = nn.scaledDotProductAttention(q, k, v, { causal: true }).dataSync();
  const Q = q.dataSync(), K = k.dataSync(), Vv = v.dataSync();
  for (let i = 0; i < 3; i++) {
    const s = [0, 1, 2].filter((j) => j <= i).map((j) => Math.exp((Q[2 * i] * K[2 * j] + Q[2 * i + 1] * K[2 * j + 1]) / Math.SQRT2));
    const z = s.reduce((a, b) => a + b, 0);
    for (let d = 0; d < 2; d++) {
      const want = s.reduce((acc, e, j) => acc + (e / z) * Vv[2 * j + d], 0);
      t.true(Math.abs(out[2 * i + d] - want) < 1e-5);
    }
  }
});

test('GPT-2 init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0, norms 1; reinit from stats', (t) => {
  kiln.manualSeed(5);
  const m = new nn.GPT({ nLayer: 4, nHead: 4, nEmbd: 64, vocabSize: 100, blockSize: 32 });
  const stats = nn.parameterStats(m);
  const near = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol;
  t.true(near(stats['h.0.attn.cAttn.weight'].std, 0.02, 0.001));
  t.true(near(stats['wte.weight'].std, 0.02, 0.001));
  t.true(near(stats['h.2.mlp.cProj.weight'].std, 0.02 / Math.sqrt(8), 0.0005));
  t.true(near(stats['h.2.attn.cProj.weight'].std, 0.02 / Math.sqrt(8), 0.0007));
  t.is(stats['h.1.mlp.cFc.bias'].std, 0);
  t.is(stats['h.1.mlp.cFc.bias'].mean, 0);
  t.is(stats['lnF.weight'].mean, 1);
  const target = Object.fromEntries(Object.keys(stats).map((k, i) => [k, { mean: 0.01 * i, std: 0.05 }]));
  target['lnF.bias'] = { mean: 0.3, std: 0 };
  nn.reinitFromStats(m, target);
  const after = nn.parameterStats(m);
  for (const [k, s] of Object.entries(target)) {
    const n = m.stateDict()[k].size;
    t.true(near(after[k].mean, s.mean, 4 * 0.05 / Math.sqrt(n) + 1e-6), `${k} mean ${after[k].mean} vs ${s.mean}`);
    if (n >= 1000) t.true(near(after[k].std, s.std, 0.005), `${k} std`);
  }
  t.is(after['lnF.bias'].std, 0);
  t.throws(() => nn.reinitFromStats(m, {}, true), { code: 'INVALID_ARGUMENT' } as any);
});

test('vector read-in/read-out GPT for regression prompts', (t) => {
  const m = new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, inputDim: 10, outputDim: 1, blockSize: 42 });
  t.deepEqual(m.forward(kiln.randn([3, 42, 10])).shape, [3, 42, 1]);
  t.truthy(m.readIn);
  t.is(m.wte, null);
  t.throws(() => m.forward(kiln.randn([3, 42, 9])), { code: 'SHAPE_MISMATCH' } as any);
  t.throws(() => new nn.GPT({ nLayer: 1, nHead: 3, nEmbd: 16, vocabSize: 4, blockSize: 2 }), { code: 'INVALID_ARGUMENT' } as any);
  t.throws(() => new nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 2 }), { code: 'INVALID_ARGUMENT' } as any);
});
