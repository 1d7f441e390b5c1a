// `kiln bench attention`: causal scaled-dot-product attention, forward + backward, float32 on the
// CPU, against PyTorch 1.13 in the same run (the faster of its explicit softmax(q k^T) v and its
// private F._scaled_dot_product_attention). Each case runs kiln then PyTorch back to back, so a
// shared machine's load hits both sides alike.
import * as kiln from '../src/index.js';
import { runTorch, timeIt, type BenchRow } from './harness.js';

export const attentionCases: [number, number, number, number][] = [
  [8, 4, 64, 32],
  [16, 8, 128, 64],
  [4, 8, 512, 64],
];

/** Model FLOPs of causal attention forward + backward: 4 B H T^2 D forward (half of it under the
 *  mask), backward 2.5x forward (FlashAttention's convention; recomputation is not counted). */
export function attentionFlops(B: number, H: number, T: number, D: number, causal = true): number {
  const fwd = 4 * B * H * T * T * D * (causal ? 0.5 : 1);
  return fwd * 3.5;
}

export function benchAttention(threads: number, only?: string[]): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const rows: BenchRow[] = [];
  let torchLib: string | null = null, torchError: string | undefined;
  for (const [B, H, T, D] of attentionCases) {
    const name = `B${B} H${H} T${T} D${D} causal`;
    if (only && !only.includes(name) && !only.includes(`${B},${H},${T},${D}`)) continue;
    const [q, k, v] = [0, 1, 2].map(() => kiln.keep(kiln.randn([B, H, T, D], { requiresGrad: true })));
    const g = kiln.keep(kiln.randn([B, H, T, D]));
    const step = () => {
      kiln.tidy(() => kiln.scaledDotProductAttention(q, k, v, { causal: true }).backward(g));
      for (const x of [q, k, v]) {
        if (x.grad && !x.grad.isDisposed) x.grad.dispose();
        x.grad = null;
      }
    };
    const t = timeIt(step, { reps: 7, targetMs: 100 });
    const flops = attentionFlops(B, H, T, D);
    const row: BenchRow = { case: name, kiln: t, unit: 'GFLOP/s', kilnRate: flops / (t.medianMs * 1e6) };
    const torch = runTorch('torch_attention.py', ['--threads', String(threads), '--reps', '5', '--cases', `${B},${H},${T},${D}`]);
    if (torch.json) {
      torchLib = torch.json.library;
      const ref = torch.json.results[0];
      row.torch = { ms: ref.ms, best: ref.best, explicitMs: ref.explicit_ms, privateMs: ref.private_ms };
      row.torchRate = flops / (ref.ms * 1e6);
      row.speedup = ref.ms / t.medianMs;
    } else torchError = torch.error;
    rows.push(row);
    for (const x of [q, k, v, g]) x.dispose();
  }
  return { rows, torch: torchLib, torchError };
}
