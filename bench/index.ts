// The benchmarks behind `kiln bench <name>`.
import { benchGemm, benchOverhead } from './core.js';
import type { BenchRow } from './harness.js';

export type BenchFn = (threads: number, only?: string[]) => { rows: BenchRow[]; torch: string | null; torchError?: string };

export const benchmarks: Record<string, { summary: string; run: BenchFn }> = {
  gemm: { summary: 'float32 GEMM shapes from bench/gemm_shapes.txt vs torch.mm/bmm', run: benchGemm },
  overhead: { summary: 'dispatch overhead of a 16-element add vs PyTorch eager', run: benchOverhead },
};

export { formatReport } from './harness.js';
export type { BenchReport } from './harness.js';
