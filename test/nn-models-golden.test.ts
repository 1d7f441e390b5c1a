// Golden tests against PyTorch for the nn models other than GPT (fixture from
// bench/reference/make_nn_models_golden.py: float64 twins written from kiln's source, themselves
// checked there against torch.nn.MultiheadAttention, TransformerEncoderLayer(norm_first=True) and
// Conv2d). Per case: the outputs, the loss, every parameter gradient and the float inputs'
// gradients, from the same float32 weights and inputs. Masks use kiln's polarity (nonzero = hidden)
// and every case with a mask has at least one padded sequence.
// Error measure per tensor: max |kiln - torch| / max |torch| (relative to the tensor's scale).
// Each case runs twice: in float32 (within 1e-4), and in float64, where the loss (stored as a
// double) must agree to 1e-10 and the tensors to their float32 rounding.
import test from 'ava';
import { readFileSync } from 'node:fs';
import * as kiln from '../src/index.js';
const { nn } = kiln;

interface Stored { shape: number[]; dtype: 'float32' | 'int32'; data: string | number[] }
interface Case {
  kind: 'mha' | 'sdpa' | 'encoder' | 'vit' | 'seq2seq';
  config: Record<string, number | boolean>;
  weights: Record<string, Stored>;
  inputs: Record<string, Stored>;
  outputs: Record<string, Stored>;
  loss: number;
  grads: Record<string, Stored>;
  inputGrads: Record<string, Stored>;
}
const golden: { cases: Record<string, Case> } = JSON.parse(readFileSync(new URL('./fixtures/nn_models_golden.json', import.meta.url), 'utf8'));
type Float = 'float32' | 'float64';
const TOL = { float32: { tensor: 1e-4, loss: 1e-4 }, float64: { tensor: 1e-6, loss: 1e-10 } };

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function values(s: Stored): Float32Array | Int32Array {
  return s.dtype === 'int32' ? Int32Array.from(s.data as number[]) : f32(s.data as string);
}

function load(s: Stored, dtype: Float): kiln.Tensor {
  if (s.dtype === 'int32') return kiln.tensor(values(s), { shape: s.shape, dtype: 'int32' });
  return kiln.tensor(dtype === 'float64' ? Float64Array.from(values(s)) : values(s), { shape: s.shape, dtype });
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

function build(c: Case, dtype: Float): kiln.nn.Module | null {
  const cfg = { ...c.config, dtype } as any;  // the case's config, as the fixture wrote it
  const m = c.kind === 'mha' ? new nn.MultiheadAttention(cfg.nEmbd, cfg.nHead, { causal: cfg.causal, cross: cfg.cross, kvDim: cfg.kvDim, dtype })
    : c.kind === 'encoder' ? new nn.TransformerEncoder(cfg)
    : c.kind === 'vit' ? new nn.ViT(cfg)
    : c.kind === 'seq2seq' ? new nn.Seq2Seq(cfg)
    : null;
  if (m) m.loadStateDict(Object.fromEntries(Object.entries(c.weights).map(([n, w]) => [n, load(w, dtype)])));
  return m;
}

/** kiln's forward on the case's inputs: its outputs and the loss the fixture used. */
function run(c: Case, m: kiln.nn.Module | null, I: Record<string, kiln.Tensor>): { outs: Record<string, kiln.Tensor>; loss: kiln.Tensor } {
  const probe = (y: kiln.Tensor) => kiln.sum(kiln.mul(y, I.probe));
  switch (c.kind) {
    case 'mha': {
      const y = (m as kiln.nn.MultiheadAttention).forward(I.x, I.memory ?? null, I.mask);
      return { outs: { y }, loss: probe(y) };
    }
    case 'sdpa': {
      const y = kiln.scaledDotProductAttention(I.q, I.k, I.v, { causal: c.config.causal as boolean, keyPaddingLengths: I.lengths });
      return { outs: { y }, loss: probe(y) };
    }
    case 'encoder': {
      const y = (m as kiln.nn.TransformerEncoder).forward(I.x, { t: I.t, cond: I.cond, mask: I.mask });
      return { outs: { y }, loss: probe(y) };
    }
    case 'vit': {
      const vit = m as kiln.nn.ViT;
      const logits = vit.forward(I.images);
      const features = kiln.noGrad(() => vit.forward(I.images, true));
      return { outs: { logits, features }, loss: kiln.crossEntropy(logits, I.labels) };
    }
    case 'seq2seq': {
      const s2s = m as kiln.nn.Seq2Seq;
      const memory = s2s.encode(I.src, I.srcMask);
      const logits = s2s.decode(I.tgt, memory, I.srcMask);
      const logitsUnmasked = kiln.noGrad(() => s2s.forward(I.src, I.tgt));
      const V = c.config.tgtVocabSize as number;
      return { outs: { memory, logits, logitsUnmasked }, loss: kiln.crossEntropy(logits.reshape([-1, V]), I.targets.reshape([-1])) };
    }
  }
}

for (const [name, c] of Object.entries(golden.cases)) for (const dtype of ['float32', 'float64'] as const) {
  test(`${name} in ${dtype}: outputs, loss and gradients match PyTorch`, (t) => {
    const tol = TOL[dtype];
    kiln.tidy(() => {
      const m = build(c, dtype);
      if (m) t.deepEqual(m.namedParameters().map(([n]) => n), Object.keys(c.grads), 'parameter names and order');
      const I = Object.fromEntries(Object.entries(c.inputs).map(([n, s]) => [n, load(s, dtype)]));
      for (const n of Object.keys(c.inputGrads)) I[n].requiresGrad = true;
      const { outs, loss } = run(c, m, I);
      const errs: string[] = [];
      let worst = 0;
      const check = (what: string, got: kiln.Tensor | null | undefined, want: Stored) => {
        if (!got) return t.fail(`${what}: no tensor`);
        t.deepEqual(got.shape, want.shape, what);
        t.is(got.dtype, dtype, what);
        const e = relErr(got.dataSync(), values(want));
        worst = Math.max(worst, e);
        if (!(e <= tol.tensor)) errs.push(`${what} rel err ${e}`);
      };
      t.deepEqual(Object.keys(outs).sort(), Object.keys(c.outputs).sort(), 'outputs');
      for (const [n, want] of Object.entries(c.outputs)) check(`output ${n}`, outs[n], want);
      const eOut = worst;
      const lossErr = Math.abs(loss.item() - c.loss) / Math.abs(c.loss);
      if (!(lossErr <= tol.loss)) errs.push(`loss ${loss.item()} vs ${c.loss}`);
      loss.backward();
      if (m) for (const [n, p] of m.namedParameters()) check(`gradient of ${n}`, p.grad, c.grads[n]);
      for (const [n, want] of Object.entries(c.inputGrads)) check(`gradient of input ${n}`, I[n].grad, want);
      t.deepEqual(errs, []);
      t.log(`outputs ${eOut.toExponential(2)}, loss ${lossErr.toExponential(2)}, worst of all ${worst.toExponential(2)}`);
    });
  });
}
