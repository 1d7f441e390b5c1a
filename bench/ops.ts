// `kiln bench ops`: everyday ops a training step is made of, forward or forward+backward, on float32
// CPU tensors, against the same ops in PyTorch in the same run. Gradients are freed each call (as
// optimizer.zeroGrad does), so the figures are the ops', not the collector's.
import * as kiln from '../src/index.js';
import { runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

type Case = [name: string, fn: () => void];

function cases(): { list: Case[]; free: kiln.Tensor[] } {
  kiln.manualSeed(0);
  const X = kiln.randn([256, 1024]), Xg = kiln.randn([256, 1024], { requiresGrad: true }), W = kiln.ones([1024]), B = kiln.zeros([1024]);
  const L = kiln.randn([512, 1000], { requiresGrad: true }), Y = kiln.randint(0, 1000, [512]);
  const E = kiln.randn([5000, 256], { requiresGrad: true }), I = kiln.randint(0, 5000, [64, 64]);
  const S = kiln.randn([128, 1000]), idx = kiln.randint(0, 1000, [128, 200]);
  const C = kiln.randn([8, 32, 32, 32], { requiresGrad: true }), K = kiln.randn([64, 32, 3, 3], { requiresGrad: true });
  const zero = (...ts: kiln.Tensor[]) => { for (const t of ts) { t.grad?.dispose(); t.grad = null; } };
  const list: Case[] = [
    ['softmax [256,1024] fwd+bwd', () => { kiln.softmax(Xg, -1).mul(X).sum().backward(); zero(Xg); }],
    ['layerNorm [256,1024] fwd+bwd', () => { kiln.layerNorm(Xg, 1024, W, B).mul(X).sum().backward(); zero(Xg); }],
    ['gelu (erf) [256,1024] fwd+bwd', () => { kiln.gelu(Xg).mul(X).sum().backward(); zero(Xg); }],
    ['crossEntropy [512,1000] fwd+bwd', () => { kiln.crossEntropy(L, Y).backward(); zero(L); }],
    ['embedding [5000,256] x 4096 fwd+bwd', () => { kiln.embedding(E, I).sum().backward(); zero(E); }],
    ['sum over the last dim [256,1024]', () => { kiln.sum(X, 1); }],
    ['cumsum over the last dim [256,1024]', () => { kiln.cumsum(X, 1); }],
    ['transpose().contiguous() [256,1024]', () => { X.transpose(0, 1).contiguous(); }],
    ['concat 2 x [256,1024] on dim 1', () => { kiln.concat([X, X], 1); }],
    ['sort [128,1000] on the last dim', () => { kiln.sort(S, -1); }],
    ['topk 10 of [128,1000]', () => { kiln.topk(S, 10); }],
    ['gather [128,1000] by [128,200]', () => { kiln.gather(S, 1, idx); }],
    ['conv2d (8,32,32,32) 64x3x3 pad 1 fwd+bwd', () => { kiln.conv2d(C, K, null, { padding: 1 }).sum().backward(); zero(C, K); }],
  ];
  return { list, free: [X, Xg, W, B, L, Y, E, I, S, idx, C, K] };
}

export function benchOps(threads: number, only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  if (device !== 'cpu') throw new Error('kiln bench ops: cpu only');
  const { list, free } = cases();
  const rows: BenchRow[] = [];
  for (const [name, fn] of list) {
    if (only && !only.includes(name)) continue;
    rows.push({ case: name, kiln: timeIt(() => kiln.tidy(fn), { reps: 7, targetMs: 60 }) });
  }
  for (const t of free) t.dispose();
  const torch = runTorch('torch_ops.py', ['--threads', String(threads)]);
  if (torch.json) {
    for (const r of rows) {
      const ref = torch.json.results.find((x: { name: string }) => x.name === r.case);
      if (!ref) continue;
      r.torch = { ms: ref.ms };
      r.speedup = ref.ms / r.kiln.medianMs;
    }
  }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}
