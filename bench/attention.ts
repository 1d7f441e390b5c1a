// `kiln bench attention`: causal scaled-dot-product attention, forward + backward, float32 on the
// CPU, against PyTorch 1.13 in the same run (the faster of its explicit softmax(q k^T) v and its
// private F._scaled_dot_product_attention). Each case runs kiln then PyTorch back to back, so a
// shared machine's load hits both sides alike.
import * as kiln from '../src/index.js';
import { deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

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

/** GPU cases (issue 4): causal, D = 64 and 128, T = 1k to 8k, 16k tokens per batch, width 1024 (FlashAttention's set-up). */
export const cudaAttentionCases: [number, number, number, number][] = [
  [16, 16, 1024, 64], [4, 16, 4096, 64], [2, 16, 8192, 64],
  [16, 8, 1024, 128], [4, 8, 4096, 128], [2, 8, 8192, 128],
];

/** Whether `--only` names the case [B, H, T, D]: as BxHxTxD (the CLI splits its list at commas) or,
 *  from code, as "B,H,T,D". */
function picked(only: string[], [B, H, T, D]: number[]): boolean {
  return only.includes(`${B}x${H}x${T}x${D}`) || only.includes(`${B},${H},${T},${D}`);
}

/** Forward-only model FLOPs (4 B H T^2 D, half of it under a causal mask). */
const forwardFlops = (B: number, H: number, T: number, D: number) => 2 * B * H * T * T * D;

/**
 * bfloat16 cases also get a forward-only row (kiln under noGrad, PyTorch under no_grad), so a reader can
 * tell the forward's share of a gap from the backward's. KILN_BENCH_TORCH_BACKENDS=1 adds PyTorch's
 * forward + backward with each SDPA backend forced (flash, cuDNN, memory-efficient) as notes.
 */
function benchAttentionCuda(only?: string[]): { rows: BenchRow[]; torch: string | null; torchError?: string; notes?: string[] } {
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  let torchLib: string | null = null, torchError: string | undefined;
  const dtypes: ('float32' | 'bfloat16')[] = ['bfloat16', 'float32'];
  for (const dtype of dtypes) {
    // float32 has no tensor-core path on either side worth a full sweep: its two shortest cases.
    const cases = cudaAttentionCases.filter(([, , T]) => dtype !== 'float32' || T === 1024)
      .filter((c) => !only || picked(only, c));
    if (cases.length === 0) continue;
    const caseRows: BenchRow[] = [], fwdRows: BenchRow[] = [];
    for (const [B, H, T, D] of cases) {
      const mk = (grad: boolean) => {
        const x = kiln.randn([B, H, T, D], { device: 'cuda' });
        if (dtype === 'float32') return kiln.keep(grad ? x.requiresGrad_(true) : x);
        const h = kiln.keep(kiln.cast(x, dtype));
        x.dispose();
        return grad ? h.requiresGrad_(true) : h;
      };
      const [q, k, v] = [0, 1, 2].map(() => mk(true));
      const g = mk(false);
      const step = () => {
        kiln.tidy(() => kiln.scaledDotProductAttention(q, k, v, { causal: true }).backward(g));
        for (const x of [q, k, v]) {
          if (x.grad && !x.grad.isDisposed) x.grad.dispose();
          x.grad = null;
        }
      };
      const t = timeIt(step, { reps: 7, targetMs: 100, ...deviceTiming('cuda') });
      const flops = attentionFlops(B, H, T, D);
      caseRows.push({ case: `${dtype} B${B} H${H} T${T} D${D} causal`, kiln: t, unit: 'TFLOP/s', kilnRate: flops / (t.medianMs * 1e9) });
      if (dtype === 'bfloat16') {
        const fwd = () => kiln.noGrad(() => kiln.tidy(() => { kiln.scaledDotProductAttention(q, k, v, { causal: true }); }));
        const tf = timeIt(fwd, { reps: 7, targetMs: 100, ...deviceTiming('cuda') });
        fwdRows.push({ case: `${dtype} B${B} H${H} T${T} D${D} causal fwd`, kiln: tf, unit: 'TFLOP/s', kilnRate: forwardFlops(B, H, T, D) / (tf.medianMs * 1e9) });
      }
      for (const x of [q, k, v, g]) x.dispose();
    }
    const backends = dtype === 'bfloat16' && process.env.KILN_BENCH_TORCH_BACKENDS === '1';
    const torch = runTorch('torch_attention.py', ['--device', 'cuda', '--dtype', dtype === 'float32' ? 'f32' : 'bf16',
      '--reps', '7', '--fwd', dtype === 'bfloat16' ? '1' : '0', '--backends', backends ? '1' : '0',
      '--cases', cases.map((c) => c.join(',')).join(';')]);
    if (torch.json) {
      torchLib = torch.json.library;
      caseRows.forEach((row, i) => {
        const ref = torch.json.results[i];
        const [B, H, T, D] = cases[i];
        row.torch = { ms: ref.ms, minMs: ref.min_ms };
        row.torchRate = attentionFlops(B, H, T, D) / (ref.ms * 1e9);
        row.speedup = ref.ms / row.kiln.medianMs;
        const fr = fwdRows[i];
        if (fr && ref.fwd_ms) {
          fr.torch = { ms: ref.fwd_ms, minMs: ref.fwd_min_ms };
          fr.torchRate = forwardFlops(B, H, T, D) / (ref.fwd_ms * 1e9);
          fr.speedup = ref.fwd_ms / fr.kiln.medianMs;
        }
        if (ref.backends && Object.keys(ref.backends).length)
          notes.push(`torch SDPA fwd+bwd by backend, ${row.case}: default ${ref.ms} ms; ` +
            Object.entries(ref.backends).map(([n, ms]) => `${n} ${ms} ms`).join(', '));
      });
    } else torchError = torch.error;
    rows.push(...caseRows, ...fwdRows);
  }
  return { rows, torch: torchLib, torchError, notes: notes.length ? notes : undefined };
}

export function benchAttention(threads: number, only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string; notes?: string[] } {
  if (device === 'cuda') return benchAttentionCuda(only);
  const rows: BenchRow[] = [];
  let torchLib: string | null = null, torchError: string | undefined;
  for (const [B, H, T, D] of attentionCases) {
    const name = `B${B} H${H} T${T} D${D} causal`;
    if (only && !only.includes(name) && !picked(only, [B, H, T, D])) continue;
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
