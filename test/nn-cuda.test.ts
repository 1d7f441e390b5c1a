// The nn models and the ICL recipe on CUDA against the same code on the CPU: built from the same seed
// (Philox gives the CPU's values on the GPU, so the initial weights agree to the last ulp), outputs, gradients and
// a few Adam steps agree. Only with a GPU; without one the file shows one skipped entry.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import type { Device, Tensor } from '../src/index.js';
import { buildModel, promptLoss } from '../src/recipes/icl/model.js';
import { samplePrompts } from '../src/recipes/icl/prompts.js';
import { trainIcl } from '../src/recipes/icl/train.js';
import { cudaReason } from './helpers/checkop.js';

const { nn } = kiln;
const gpu = kiln.cuda.isAvailable();
const cudaTest = gpu ? test : test.skip;  // without a GPU: skipped (cudaReason() says why)

/** max |a - b| / max |b| (b the CPU reference); the tensors may live on different devices. */
function relDiff(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').to('float64').dataSync(), y = b.to('cpu').to('float64').dataSync();
  let d = 0, m = 0;
  for (let i = 0; i < y.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return x.length === y.length ? d / Math.max(m, 1e-30) : Infinity;
}

/** The same model built on each device from one seed. */
function twins<M extends kiln.nn.Module>(seed: number, make: (device: Device) => M): Record<Device, M> {
  kiln.manualSeed(seed);
  const cpu = make('cpu');
  kiln.manualSeed(seed);
  const cuda = make('cuda');
  return { cpu, cuda };
}

function sameParams(t: import('ava').ExecutionContext, m: Record<Device, kiln.nn.Module>): void {
  const a = m.cpu.namedParameters(), b = new Map(m.cuda.namedParameters());
  for (const [name, p] of a) {
    const q = b.get(name)!;
    t.is(q.device, 'cuda', name);
    // uniform draws are bit for bit equal, normal ones to the last ulp (test/cuda-core's Philox test)
    const r = relDiff(q, p);
    t.true(r <= 1e-6, `${name}: initial weights differ between cpu and cuda (${r})`);
  }
}

/** Forward, a scalar loss and backward on each device; outputs and every gradient agree within `tol`. */
function sameForwardBackward(t: import('ava').ExecutionContext, m: Record<Device, kiln.nn.Module>, run: (model: kiln.nn.Module, device: Device) => Tensor, tol: number): void {
  const out: Partial<Record<Device, Tensor>> = {};
  for (const device of ['cpu', 'cuda'] as const) {
    m[device].zeroGrad();
    const y = run(m[device], device);
    y.square().mean().backward();
    out[device] = y;
  }
  t.true(relDiff(out.cuda!, out.cpu!) < tol, `output: ${relDiff(out.cuda!, out.cpu!)}`);
  const g = new Map(m.cuda.namedParameters());
  for (const [name, p] of m.cpu.namedParameters()) {
    if (!p.grad) continue;
    const q = g.get(name)!;
    t.truthy(q.grad, `${name} has no gradient on cuda`);
    const r = relDiff(q.grad!, p.grad);
    t.true(r < tol, `${name} gradient: ${r}`);
  }
}

const icl = (B: number, n: number, d: number, seed: number) => samplePrompts({ task: 'linear', B, n, d, seed });

cudaTest('GPT on vectors (head dim 32: the fused attention kernel) matches the CPU, forward and backward', (t) => {
  const m = twins(11, (device) => buildModel({ nLayer: 2, nHead: 2, nEmbd: 64, d: 5, points: 11, device }));
  sameParams(t, m);
  const batch = icl(16, 11, 5, 3);
  sameForwardBackward(t, m, (model, device) => promptLoss(model as kiln.nn.GPT, batch, device).reshape([1]), 2e-4);
});

cudaTest('GPT with head dim 16 (composed attention, causal mask made on the GPU) matches the CPU', (t) => {
  const m = twins(12, (device) => new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 32, vocabSize: 50, blockSize: 24, device }));
  sameParams(t, m);
  const tokens = kiln.randint(0, 50, [3, 24]);
  sameForwardBackward(t, m, (model, device) => (model as kiln.nn.GPT).forward(tokens.to(device)), 2e-4);
});

cudaTest('TransformerEncoder with timesteps, ViT and Seq2Seq match the CPU on cuda', (t) => {
  const enc = twins(13, (device) => new nn.TransformerEncoder({ nLayer: 2, nHead: 2, nEmbd: 64, maxLen: 12, inputDim: 3, outputDim: 3, timestep: true, device }));
  const x = kiln.randn([2, 12, 3]), ts = kiln.tensor([3, 40]);
  sameForwardBackward(t, enc, (model, device) => (model as kiln.nn.TransformerEncoder).forward(x.to(device), { t: ts.to(device) }), 2e-4);
  const vit = twins(14, (device) => new nn.ViT({ imageSize: 8, patchSize: 2, channels: 1, numClasses: 3, nLayer: 1, nHead: 2, nEmbd: 64, device }));
  const img = kiln.randn([2, 1, 8, 8]);
  sameForwardBackward(t, vit, (model, device) => (model as kiln.nn.ViT).forward(img.to(device)), 2e-4);
  const s2s = twins(15, (device) => new nn.Seq2Seq({ srcVocabSize: 20, tgtVocabSize: 20, nLayer: 1, nHead: 2, nEmbd: 64, maxLen: 10, device }));
  const src = kiln.randint(0, 20, [2, 10]), tgt = kiln.randint(0, 20, [2, 7]);
  sameForwardBackward(t, s2s, (model, device) => (model as kiln.nn.Seq2Seq).forward(src.to(device), tgt.to(device)), 2e-4);
});

cudaTest('ICL: five AdamW steps on cuda follow the CPU, and the trainer runs a short job on cuda', async (t) => {
  const m = twins(16, (device) => buildModel({ nLayer: 2, nHead: 2, nEmbd: 64, d: 5, points: 11, device }));
  const losses: Record<Device, number[]> = { cpu: [], cuda: [] };
  for (const device of ['cpu', 'cuda'] as const) {
    const opt = new kiln.optim.AdamW(m[device].parameters(), { lr: 1e-3 });
    for (let s = 0; s < 5; s++) {
      opt.zeroGrad();
      const loss = promptLoss(m[device], icl(32, 11, 5, 100 + s), device);
      loss.backward();
      opt.step();
      losses[device].push(loss.item());
    }
  }
  for (let s = 0; s < 5; s++) t.true(Math.abs(losses.cuda[s] - losses.cpu[s]) <= 1e-3 * Math.abs(losses.cpu[s]), `step ${s}: ${losses.cuda[s]} vs ${losses.cpu[s]}`);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-icl-cuda-'));
  const r = await trainIcl({ d: 2, points: 5, model: 'custom', nLayer: 1, nHead: 1, nEmbd: 32, lr: 1e-3, steps: 30, evalEvery: 30, evalPrompts: 64, device: 'cuda' }, dir, { progress: 'none' });
  t.is(r.step, 30);
  t.true(Number.isFinite(r.evals[r.evals.length - 1].err_k1));
});
