// Golden test against PyTorch (fixture from bench/reference/make_gpt_golden.py, float64 reference):
// a tiny GPT's logits, loss, every gradient, and the losses of 10 AdamW steps with warm-up + cosine.
// Error measure per tensor: max |kiln - torch| / max |torch| (relative to the tensor's scale).
import test from 'ava';
import { readFileSync } from 'node:fs';
import * as kiln from '../src/index.js';

const golden = JSON.parse(readFileSync(new URL('./fixtures/gpt_golden.json', import.meta.url), 'utf8'));
const TOL = 1e-4;

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

function buildModel(): kiln.nn.GPT {
  const model = new kiln.nn.GPT({ ...golden.config, init: false });
  const state: Record<string, kiln.Tensor> = {};
  for (const [name, w] of Object.entries<{ shape: number[]; data: string }>(golden.weights))
    state[name] = kiln.tensor(f32(w.data), { shape: w.shape });
  model.loadStateDict(state);
  return model;
}

const idx = () => kiln.tensor(golden.idx.flat(), { shape: [golden.idx.length, golden.idx[0].length], dtype: 'int32' });
const targets = () => kiln.tensor(golden.targets.flat(), { shape: [golden.targets.length, golden.targets[0].length], dtype: 'int32' });
const V = golden.config.vocabSize;

test('GPT forward and gradients match PyTorch', (t) => {
  const model = buildModel();
  t.deepEqual(model.namedParameters().map(([n]) => n), Object.keys(golden.grads));
  const logits = model.forward(idx());
  t.deepEqual(logits.shape, golden.logits.shape);
  const eLogits = relErr(logits.dataSync(), f32(golden.logits.data));
  t.true(eLogits <= TOL, `logits rel err ${eLogits}`);
  const loss = kiln.crossEntropy(logits.reshape([-1, V]), targets().reshape([-1]));
  t.true(Math.abs(loss.item() - golden.loss) / golden.loss <= TOL, `loss ${loss.item()} vs ${golden.loss}`);
  loss.backward();
  let worst = 0;
  for (const [name, p] of model.namedParameters()) {
    const g = golden.grads[name];
    t.deepEqual(p.grad!.shape, g.shape, name);
    const e = relErr(p.grad!.dataSync(), f32(g.data));
    worst = Math.max(worst, e);
    t.true(e <= TOL, `${name}: gradient rel err ${e}`);
  }
  t.log(`logits rel err ${eLogits.toExponential(2)}, worst gradient rel err ${worst.toExponential(2)}`);
});

test('10 AdamW steps with warm-up + cosine match PyTorch losses', (t) => {
  const model = buildModel();
  const o = golden.optim;
  const opt = new kiln.optim.AdamW(model.parameters(), { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  const sched = new kiln.sched.LRScheduler(opt, kiln.sched.warmupCosine(o.warmup, o.steps, o.minFactor));
  const x = idx(), y = targets().reshape([-1]);
  const losses: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    opt.zeroGrad();
    const l = kiln.tidy(() => {
      const loss = kiln.crossEntropy(model.forward(x).reshape([-1, V]), y);
      loss.backward();
      return loss.item();
    });
    losses.push(l);
    opt.step();
    sched.step();
  }
  const worst = Math.max(...losses.map((l, i) => Math.abs(l - golden.losses[i]) / golden.losses[i]));
  t.log(`kiln ${losses.map((l) => l.toFixed(5)).join(' ')}; worst rel err ${worst.toExponential(2)}`);
  t.true(worst <= TOL, `losses ${losses} vs ${golden.losses}`);
});
