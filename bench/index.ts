// The benchmarks behind `kiln bench <name>`.
import { benchAttention } from './attention.js';
import { benchGemm, benchOverhead } from './core.js';
import { benchTrainStep } from './train.js';
import type { BenchDevice, BenchRow } from './harness.js';
import { benchContrastive } from './contrastive.js';
import { benchDiffusion } from './diffusion.js';
import { benchElementwise } from './elementwise.js';
import { benchOps } from './ops.js';

/** device: 'cpu' (default) or 'cuda' (benchmarks without a CUDA variant throw a UsageError-like Error). */
export type BenchFn = (threads: number, only?: string[], device?: BenchDevice) => { rows: BenchRow[]; torch: string | null; torchError?: string; notes?: string[] };

/** `cuda: true` marks the benchmarks that have a `--device cuda` variant; `only: false` those that run every case (no `--only`). */
export const benchmarks: Record<string, { summary: string; run: BenchFn; cuda?: boolean; only?: false }> = {
  gemm: { summary: 'float32 GEMM shapes from bench/gemm_shapes.txt vs torch.mm/bmm (cuda: bf16 and f32 highest/high at 4096^3 and 1024^3 vs torch.mm)', run: benchGemm, cuda: true },
  attention: { summary: 'causal attention forward+backward (float32) vs PyTorch 1.13 explicit/private SDPA (cuda: bf16/f32 vs torch SDPA)', run: benchAttention, cuda: true },
  elementwise: { summary: 'add / broadcast mul / gelu / exp in GB/s vs PyTorch and its copy bandwidth (cpu 4M, cuda 64M floats)', run: benchElementwise, cuda: true },
  ops: { summary: 'everyday ops (softmax, layer norm, gelu, cross-entropy, embedding, sums, cumsum, transpose copy, concat, sort, topk, gather, conv2d) vs PyTorch', run: benchOps },
  overhead: { summary: 'dispatch overhead of a 16-element add vs PyTorch eager', run: benchOverhead, only: false },
  contrastive: { summary: 'fused NT-Xent forward+backward at (N, D) = (512, 128), (2048, 256) vs PyTorch eager', run: benchContrastive, cuda: true, only: false },
  diffusion: { summary: 'fused DDPM step with Philox noise on (64, 64, 128) vs PyTorch eager (cuda: 256^3)', run: benchDiffusion, cuda: true, only: false },
  'train-step': { summary: 'ICL GPT-2 training step (small: 4L/4H/128, paper: 12L/8H/256) vs PyTorch', run: benchTrainStep, cuda: true },
};

export { formatReport, saveReport } from './harness.js';
export type { BenchReport } from './harness.js';
