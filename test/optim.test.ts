// Optimizers against PyTorch 1.13 (float64 trajectories computed by the snippet below), clipping
// and EMA against closed forms, schedules at known steps, in-place updates outside autograd.
//   p = [1, -2, 3, 0.5] (float64), c = [1, 0.5, -0.25, 2], loss = sum(p^2 c) + 0.1 sum(p^3), 5 steps of
//   torch.optim.<X>(...) with zero_grad / backward / step.
import test from 'ava';
import * as kiln from '../src/index.js';
const { optim, sched } = kiln;

const TORCH: Record<string, number[]> = {
  sgd: [0.5522755077852932, -1.796699512747466, 2.735211033311434, 0.15880085255566023],
  sgd_mom: [-0.06980441296670074, -1.49121522437362, 2.3428707549619623, -0.2796312712899328],
  sgd_nesterov: [-0.17099484601647513, -1.2970809229549398, 2.1899288991669756, -0.21237655735233377],
  adam: [0.5147140075119063, -1.4995249728100597, 2.5117851874033486, 0.04023612227280643],
  adamw: [0.4958514909503592, -1.4544518610887633, 2.4463747775077493, 0.03414659324532701],
};

function run(make: (ps: kiln.Tensor[]) => kiln.optim.Optimizer<any>, dtype: 'float32' | 'float64' = 'float64'): number[] {
  const p = kiln.tensor([1, -2, 3, 0.5], { dtype, requiresGrad: true });
  const c = kiln.tensor([1, 0.5, -0.25, 2], { dtype });
  const o = make([p]);
  for (let i = 0; i < 5; i++) {
    o.zeroGrad();
    kiln.tidy(() => kiln.add(kiln.sum(p.mul(p).mul(c)), kiln.sum(p.pow(3)).mul(0.1)).backward());
    o.step();
  }
  return Array.from(p.dataSync());
}

const close = (t: any, got: number[], want: number[], tol: number) =>
  got.forEach((g, i) => t.true(Math.abs(g - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `[${i}] ${g} vs ${want[i]}`));

test('SGD, momentum with dampening, Nesterov and weight decay match PyTorch', (t) => {
  close(t, run((ps) => new optim.SGD(ps, { lr: 0.05 })), TORCH.sgd, 1e-12);
  close(t, run((ps) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 })), TORCH.sgd_mom, 1e-12);
  close(t, run((ps) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 })), TORCH.sgd_nesterov, 1e-12);
  close(t, run((ps) => new optim.SGD(ps, { lr: 0.05 }), 'float32'), TORCH.sgd, 1e-5);
});

test('Adam (L2 decay) and AdamW (decoupled decay) match PyTorch', (t) => {
  const o = { lr: 0.1, betas: [0.8, 0.99] as [number, number], eps: 1e-6, weightDecay: 0.05 };
  close(t, run((ps) => new optim.Adam(ps, o)), TORCH.adam, 1e-12);
  close(t, run((ps) => new optim.AdamW(ps, o)), TORCH.adamw, 1e-12);
  close(t, run((ps) => new optim.AdamW(ps, o), 'float32'), TORCH.adamw, 1e-5);
});

// A parameter whose first gradient comes at step 3 of 5 (q, and p's first two entries through
// p[:2]·q from then on): torch 2.13 bias-corrects each parameter by its own update count.
const TORCH_LATE: Record<string, number[]> = {
  adam: [0.5099569865203766, -1.495803444219694, 2.5117851874033486, 0.04023612227280643, 0.008062205140362294, -0.40049285973512594],
  adamw: [0.49087867999543433, -1.4518521281557188, 2.4463747775077493, 0.03414659324532701, 0.0053650351283230785, -0.39273960820694964],
};

function runLate(make: (ps: kiln.Tensor[]) => kiln.optim.Optimizer<any>, resumeAt = -1): number[] {
  const p = kiln.tensor([1, -2, 3, 0.5], { dtype: 'float64', requiresGrad: true });
  const q = kiln.tensor([0.3, -0.7], { dtype: 'float64', requiresGrad: true });
  const c = kiln.tensor([1, 0.5, -0.25, 2], { dtype: 'float64' });
  let o = make([p, q]);
  for (let i = 0; i < 5; i++) {
    if (i === resumeAt) {  // a fresh optimizer from the state dict, as a resumed run has
      const sd = o.stateDict();
      const fresh = make([p, q]);
      fresh.loadStateDict(sd);
      o.dispose();
      o = fresh;
    }
    o.zeroGrad();
    kiln.tidy(() => {
      let loss = kiln.add(kiln.sum(p.mul(p).mul(c)), kiln.sum(p.pow(3)).mul(0.1));
      if (i >= 2) loss = loss.add(kiln.sum(q.pow(3))).add(kiln.sum(p.narrow(0, 0, 2).mul(q)));
      loss.backward();
    });
    o.step();
  }
  return [...p.dataSync(), ...q.dataSync()];
}

test('Adam and AdamW bias-correct each parameter by its own update count, as PyTorch, across a state-dict resume', (t) => {
  const o = { lr: 0.1, betas: [0.8, 0.99] as [number, number], eps: 1e-6, weightDecay: 0.05 };
  close(t, runLate((ps) => new optim.Adam(ps, o)), TORCH_LATE.adam, 1e-12);
  close(t, runLate((ps) => new optim.AdamW(ps, o)), TORCH_LATE.adamw, 1e-12);
  close(t, runLate((ps) => new optim.AdamW(ps, o), 3), TORCH_LATE.adamw, 1e-12);
  // The state dict says so; one written before per-parameter counts (no steps) gives a parameter
  // with state the global count, one without none.
  const p = kiln.tensor([1, 2], { requiresGrad: true }), q = kiln.tensor([3], { requiresGrad: true });
  const a = new optim.AdamW([p, q]);
  p.grad = kiln.tensor([0.5, -0.5]);
  a.step();
  a.step();
  q.grad = kiln.tensor([1]);
  a.step();
  t.deepEqual(a.stateDict().steps, [3, 1]);
  const { steps: _steps, ...old } = a.stateDict();
  const b = new optim.AdamW([p, q]);
  b.loadStateDict(old);
  t.deepEqual(b.stateDict().steps, [3, 3]);
  const bad = { ...a.stateDict(), steps: [1] };
  t.throws(() => b.loadStateDict(bad), { instanceOf: kiln.KilnError, message: /steps must be 2 integers/ });
  a.dispose();
  b.dispose();
});

test('updates are in place, outside autograd, and keep memory flat', (t) => {
  const m = new kiln.nn.Linear(64, 64); // 16 KiB weight: native memory, not the V8 heap
  const opt = new optim.AdamW(m.parameters(), { lr: 1e-3 });
  const w = m.weight;
  const x = kiln.randn([8, 64]);
  const stepOnce = () => {
    opt.zeroGrad();
    kiln.tidy(() => m.forward(x).square().mean().backward());
    opt.step();
  };
  stepOnce();
  const before = kiln.memory().tensors;
  for (let i = 0; i < 20; i++) stepOnce();
  t.is(kiln.memory().tensors, before);
  t.is(m.weight, w);
  t.true(w.isLeaf && w.requiresGrad);
  t.is(opt.stepCount, 21);
});

test('a step refused for a bad gradient changes nothing: no parameter, step count or state', (t) => {
  const m = new kiln.nn.Linear(4, 2);
  for (const make of [() => new optim.AdamW(m.parameters(), { lr: 0.1 }), () => new optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 })]) {
    const opt = make();
    kiln.tidy(() => m.forward(kiln.ones([3, 4])).square().mean().backward());
    const before = m.parameters().map((p) => p.dataSync().slice()), m0 = kiln.memory();
    const good = m.bias!.grad!;
    for (const [bad, code] of [[kiln.keep(kiln.zeros([3])), 'SHAPE_MISMATCH'], [5, 'INVALID_ARGUMENT']] as const) {
      m.bias!.grad = bad as never; // the weight, updated first, has a good gradient
      const e = t.throws(() => opt.step(), { instanceOf: kiln.KilnError }) as kiln.KilnError;
      t.is(e.code, code);
      t.regex(e.message, /the gradient of parameter \[2\]|gradient \[3\] for parameter \[2\]/);
      m.parameters().forEach((p, i) => t.deepEqual(p.dataSync(), before[i]));
      t.is(opt.stepCount, 0);
      t.deepEqual(opt.stateDict().state, [{}, {}]);
      if (bad instanceof kiln.Tensor) bad.dispose();
      t.is(kiln.memory().tensors, m0.tensors);
    }
    m.bias!.grad = good;
    m.zeroGrad();
  }
});

test('parameter groups, lr factors and state dict round trip', (t) => {
  const a = kiln.tensor([1, 2], { requiresGrad: true }), b = kiln.tensor([3], { requiresGrad: true });
  const opt = new optim.Adam([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01, weightDecay: 0.5 }]);
  opt.setLrFactor(0.5);
  t.is(opt.paramGroups[0].options.lr, 0.05);
  t.is(opt.paramGroups[1].options.lr, 0.005);
  t.is(opt.paramGroups[1].options.weightDecay, 0.5);
  kiln.sum(a.mul(b)).backward();
  opt.step();
  const sd = opt.stateDict();
  t.deepEqual(Object.keys(sd.state[0]), ['exp_avg', 'exp_avg_sq']);
  const opt2 = new optim.Adam([{ params: [a], lr: 1 }, { params: [b], lr: 1 }]);
  opt2.loadStateDict(sd);
  t.is(opt2.stepCount, 1);
  t.is(opt2.paramGroups[1].options.lr, 0.005);
  t.deepEqual(opt2.stateDict().state[1].exp_avg.toArray(), sd.state[1].exp_avg.toArray());
  t.throws(() => opt2.loadStateDict({ ...sd, state: [sd.state[0]] }), { code: 'INVALID_ARGUMENT' } as any);
  t.throws(() => new optim.SGD([kiln.tensor([1], { dtype: 'int32' })], { lr: 1 }), { code: 'DTYPE_MISMATCH' } as any);
  t.throws(() => new optim.Adam([a], { lr: -1 }), { code: 'INVALID_ARGUMENT' } as any);
  t.throws(() => new optim.SGD([a], { lr: 1, nesterov: true }), { code: 'INVALID_ARGUMENT' } as any);
});

test('clipGradNorm scales to the global norm; EMA follows its closed form', (t) => {
  const a = kiln.tensor([3, 0], { requiresGrad: true }), b = kiln.tensor([[4]], { requiresGrad: true });
  kiln.add(kiln.sum(a.mul(kiln.tensor([3, 0]))), kiln.sum(b.mul(4))).backward(); // grads [3, 0] and [[4]]
  t.is(optim.clipGradNorm([a, b], 10), 5); // below the limit: unchanged
  t.deepEqual(a.grad!.toArray(), [3, 0]);
  const n = optim.clipGradNorm([a, b], 1);
  t.is(n, 5);
  t.true(Math.abs(optim.gradNorm([a, b]) - 1) < 1e-5);
  t.true(Math.abs(b.grad!.item() - 0.8) < 1e-5);

  const m = new kiln.nn.Linear(2, 1);
  kiln.nn.constant_(m.weight, 1);
  const ema = new optim.EMA(m, 0.9);
  kiln.nn.constant_(m.weight, 3);
  for (let k = 0; k < 4; k++) ema.update();
  const want = 3 + Math.pow(0.9, 4) * (1 - 3);
  t.true(Math.abs((ema.shadow.get('weight')!.dataSync()[0]) - want) < 1e-6);
  ema.applyTo();
  t.true(Math.abs(m.weight.dataSync()[0] - want) < 1e-6);
  ema.restore();
  t.is(m.weight.dataSync()[0], 3);
});

test('EMA.applyTo twice before restore is refused: restore brings back the trained weights, no copies leak', (t) => {
  const m = new kiln.nn.Linear(64, 64);
  kiln.nn.constant_(m.weight, 1);
  const ema = new optim.EMA(m, 0.5);
  kiln.nn.constant_(m.weight, 3);
  ema.update();
  const m0 = kiln.memory();
  ema.applyTo();
  const e = t.throws(() => ema.applyTo(), { instanceOf: kiln.KilnError }) as kiln.KilnError;
  t.is(e.code, 'INVALID_ARGUMENT');
  t.regex(e.message, /EMA\.applyTo: the averages are already applied; call restore\(\) first/);
  t.is(m.weight.dataSync()[0], 2);
  ema.restore();
  t.deepEqual([...new Set(m.weight.dataSync())], [3]);
  const m1 = kiln.memory();
  t.deepEqual([m1.tensors, m1.bytes], [m0.tensors, m0.bytes]);
});

test('schedules: warm-up, cosine, linear decay, inverse sqrt, step, sequential, product', (t) => {
  const near = (a: number, b: number) => t.true(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  const w = sched.linearWarmup(4);
  [0.25, 0.5, 0.75, 1, 1].forEach((v, s) => near(w(s), v));
  const c = sched.cosine(10, 0.1);
  near(c(0), 1);
  near(c(5), 0.55);
  near(c(10), 0.1);
  near(c(50), 0.1);
  const l = sched.linearDecay(4, 0.2);
  near(l(2), 0.6);
  near(l(9), 0.2);
  const r = sched.inverseSqrt(4);
  near(r(1), 0.5);
  near(r(3), 1);
  near(r(15), 0.5);
  const st = sched.stepDecay(3, 0.5);
  [1, 1, 1, 0.5, 0.5, 0.5, 0.25].forEach((v, s) => near(st(s), v));
  const wc = sched.warmupCosine(2, 6);
  near(wc(0), 0.5);
  near(wc(1), 1);
  near(wc(2), 1);
  near(wc(4), 0.5);
  near(wc(6), 0);
  near(sched.product(sched.constant(0.5), sched.stepDecay(1, 0.5))(2), 0.125);
  const p = kiln.tensor([1], { requiresGrad: true });
  const opt = new optim.SGD([p], { lr: 0.2 });
  const s = new sched.LRScheduler(opt, wc);
  near(opt.lr, 0.1);
  s.step();
  near(opt.lr, 0.2);
  s.setStep(4);
  near(opt.lr, 0.1);
  t.throws(() => sched.sequential([w], [3]), { code: 'INVALID_ARGUMENT' } as any);
});

test('gradNorm, clipGradNorm and backward refuse a gradient that is not a Tensor with a KilnError', (t) => {
  const p = kiln.tensor([1, 2], { requiresGrad: true });
  (p as { grad: unknown }).grad = [1, 2];
  const e = t.throws(() => kiln.optim.clipGradNorm([p], 1), { instanceOf: kiln.KilnError });
  t.is(e!.code, 'INVALID_ARGUMENT');
  p.grad = null;
  const loss = kiln.sum(kiln.mul(p, p));
  const e2 = t.throws(() => loss.backward({ retainGraph: true } as never), { instanceOf: kiln.KilnError });
  t.is(e2!.code, 'INVALID_ARGUMENT');
  t.regex(e2!.message, /second argument/);
  loss.backward();
  t.deepEqual(Array.from(p.grad!.dataSync()), [2, 4], 'the graph is intact after the refusal');
});

test('LRScheduler.step refused for a bad factor leaves the step; sequential refuses bad milestones', (t) => {
  const target = { f: -1, setLrFactor(f: number) { this.f = f; } };
  const s = new sched.LRScheduler(target, (step) => (step === 3 ? NaN : 1 / (step + 1)));
  s.step();
  s.step();
  t.throws(() => s.step(), { code: 'INVALID_ARGUMENT' } as any);
  t.deepEqual(s.stateDict(), { step: 2 });
  t.is(target.f, 1 / 3);
  for (const m of [NaN, -1, 2.5]) t.throws(() => sched.sequential([sched.constant(1), sched.constant(0.5)], [m]), { code: 'INVALID_ARGUMENT' } as any, String(m));
  t.deepEqual([0, 1, 2].map(sched.sequential([sched.constant(1), sched.constant(0.5)], [0])), [0.5, 0.5, 0.5]);
});
