// Golden test: kiln against PyTorch's numbers for a handful of core ops and a 2-layer MLP loss
// (fixtures written by bench/reference/make_core_fixtures.py, float64, inputs rounded to float32).
import test from 'ava';
import { readFileSync } from 'node:fs';
import * as kiln from '../src/index.js';
import type { Tensor, DType } from '../src/index.js';
import { assertClose, type Tol } from './helpers/checkop.js';

interface Enc {
  shape: number[];
  dtype: 'float64' | 'int32';
  data: number[];
}
interface Case {
  inputs: Record<string, Enc>;
  output: Enc;
  upstream: Enc;
  grads: Record<string, Enc>;
}
const golden = JSON.parse(readFileSync(new URL('./fixtures/core_golden.json', import.meta.url), 'utf8')) as { torch: string; cases: Record<string, Case> };

// Stated tolerances: float64 agrees with PyTorch's float64 to rounding; float32 to float32 rounding
// of O(1) values accumulated over short sums.
const TOL: Record<'float32' | 'float64', { fwd: Tol; grad: Tol }> = {
  float64: { fwd: { atol: 1e-12, rtol: 1e-10 }, grad: { atol: 1e-12, rtol: 1e-10 } },
  float32: { fwd: { atol: 2e-5, rtol: 1e-4 }, grad: { atol: 5e-5, rtol: 1e-3 } },
};

type Fn = (x: Record<string, Tensor>) => Tensor;
const ops: Record<string, Fn> = {
  matmul: ({ a, b }) => a.matmul(b),
  matmul_batched: ({ a, b }) => a.matmul(b),
  layer_norm: ({ x, w, b }) => kiln.layerNorm(x, 6, w, b, 1e-5),
  cross_entropy_ignore: ({ logits, targets }) => kiln.crossEntropy(logits, targets, { ignoreIndex: -100 }),
  cross_entropy_smoothing_sum: ({ logits, targets }) =>
    kiln.crossEntropy(logits, targets, { ignoreIndex: -100, labelSmoothing: 0.1, reduction: 'sum' }),
  softmax: ({ x }) => x.softmax(-1),
  log_softmax_dim0: ({ x }) => x.logSoftmax(0),
  gelu_exact: ({ x }) => x.gelu(),
  gelu_tanh: ({ x }) => x.gelu('tanh'),
  logsumexp: ({ x }) => x.logsumexp(1),
  mlp_loss: ({ x, w1, b1, w2, b2, y }) => kiln.crossEntropy(x.matmul(w1).add(b1).gelu('tanh').matmul(w2).add(b2), y),
};

test('the fixture file covers every op and was made by PyTorch', (t) => {
  t.regex(golden.torch, /^\d+\.\d+/);
  t.deepEqual(Object.keys(golden.cases).sort(), Object.keys(ops).sort());
});

const make = (e: Enc, dtype: DType, grad: boolean): Tensor =>
  e.dtype === 'int32'
    ? kiln.tensor(Int32Array.from(e.data), { shape: e.shape })
    : kiln.tensor(dtype === 'float64' ? Float64Array.from(e.data) : Float32Array.from(e.data), { shape: e.shape, requiresGrad: grad });

for (const [name, c] of Object.entries(golden.cases)) {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`${name} matches PyTorch (${dtype})`, (t) => {
      const base = kiln.memory().tensors;
      kiln.tidy(() => {
        const xs: Record<string, Tensor> = {};
        for (const [k, e] of Object.entries(c.inputs)) xs[k] = make(e, dtype, true);
        const out = ops[name](xs);
        t.deepEqual(out.shape, c.output.shape, 'output shape');
        assertClose(t, `${name} ${dtype} output`, out.dataSync(), c.output.data, TOL[dtype].fwd);
        out.backward(make(c.upstream, dtype, false));
        for (const [k, e] of Object.entries(c.grads)) {
          t.truthy(xs[k].grad, `${k} has a gradient`);
          assertClose(t, `${name} ${dtype} d/d${k}`, xs[k].grad!.dataSync(), e.data, TOL[dtype].grad);
        }
      });
      t.is(kiln.memory().tensors, base);
    });
  }
}
