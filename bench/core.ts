// Core kernel benchmarks: `gemm` (shapes in bench/gemm_shapes.txt; on cuda the square products
// below) and `overhead` (per-op dispatch).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { benchDir, deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

export interface GemmShape { name: string; batch: number; transA: boolean; transB: boolean; M: number; N: number; K: number }

export function gemmShapes(): GemmShape[] {
  const text = readFileSync(join(benchDir, 'gemm_shapes.txt'), 'utf8');
  const out: GemmShape[] = [];
  for (const raw of text.split('\n')) {
    const f = raw.split('#')[0].trim().split(/\s+/);
    if (f.length < 7) continue;
    const [name, batch, ta, tb, M, N, K] = f;
    out.push({ name, batch: +batch, transA: ta === 'T', transB: tb === 'T', M: +M, N: +N, K: +K });
  }
  return out;
}

/** `--device cuda` cases: float32 in both matmul precisions against torch.mm with matching allow_tf32,
 *  and bfloat16 (where the dtype exists), square, all operands on the GPU. */
export interface CudaGemmCase { name: string; n: number; dtype: 'float32' | 'bfloat16'; precision: 'highest' | 'high'; torch: string; transB?: boolean }
export const cudaGemmCases: CudaGemmCase[] = [
  { name: 'bf16 4096^3', n: 4096, dtype: 'bfloat16', precision: 'highest', torch: 'bf16' },
  { name: 'bf16 4096^3 A@B^T', n: 4096, dtype: 'bfloat16', precision: 'highest', torch: 'bf16', transB: true },
  { name: 'f32 highest 4096^3 (vs fp32)', n: 4096, dtype: 'float32', precision: 'highest', torch: 'f32' },
  { name: 'f32 high 4096^3 (vs tf32)', n: 4096, dtype: 'float32', precision: 'high', torch: 'tf32' },
  { name: 'f32 highest 1024^3 (vs fp32)', n: 1024, dtype: 'float32', precision: 'highest', torch: 'f32' },
  { name: 'f32 high 1024^3 (vs tf32)', n: 1024, dtype: 'float32', precision: 'high', torch: 'tf32' },
];

function benchGemmCuda(only?: string[]): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const hasBf16 = typeof (kiln as { cast?: unknown }).cast === 'function';
  const cases = cudaGemmCases.filter((c) => (!only || only.includes(c.name)) && (c.dtype === 'float32' || hasBf16));
  const rows: BenchRow[] = [];
  const saved = kiln.cuda.getMatmulPrecision();
  try {
    for (const c of cases) {
      const mk = () => {
        const x = kiln.randn([c.n, c.n], { device: 'cuda' });
        if (c.dtype === 'float32') return kiln.keep(x);
        const h = kiln.keep(kiln.cast(x, c.dtype));
        x.dispose();
        return h;
      };
      const a = mk(), b = mk();
      const bt = c.transB ? kiln.keep(b.transpose(0, 1)) : b;
      kiln.cuda.setMatmulPrecision(c.precision);
      // Each repeat ends with kiln.cuda.synchronize(), so the span covers finished GPU work.
      const t = timeIt(() => kiln.matmul(a, bt).dispose(), { reps: 7, targetMs: 100, ...deviceTiming('cuda') });
      const flops = 2 * c.n ** 3;
      rows.push({ case: c.name, kiln: t, unit: 'TFLOP/s', kilnRate: flops / (t.medianMs * 1e9) });
      for (const x of new Set([a, b, bt])) x.dispose();
    }
  } finally {
    kiln.cuda.setMatmulPrecision(saved);
  }
  const specs = cases.map((c) => `${c.torch},${c.n},${c.n},${c.n},${c.transB ? 'NT' : 'NN'}`);
  const torch = runTorch('torch_gemm.py', ['--device', 'cuda', '--reps', '7', '--cases', specs.join(';')]);
  if (torch.json)
    rows.forEach((row, i) => {
      const ref = torch.json.results[i];
      row.torch = { ms: ref.ms, minMs: ref.min_ms };
      row.torchRate = ref.tflops;
      row.speedup = ref.ms / row.kiln.medianMs;
    });
  return { rows, torch: torch.json ? `${torch.json.library} on ${torch.json.device}` : null, torchError: torch.error };
}

export function benchGemm(threads: number, only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  if (device === 'cuda') return benchGemmCuda(only);
  const shapes = gemmShapes().filter((s) => !only || only.includes(s.name));
  const rows: BenchRow[] = [];
  for (const s of shapes) {
    const { batch: b, M, N, K } = s;
    const mk = (rows: number, cols: number, trans: boolean) => {
      const shape = b === 1 ? (trans ? [cols, rows] : [rows, cols]) : trans ? [b, cols, rows] : [b, rows, cols];
      const t = kiln.keep(kiln.randn(shape));
      return trans ? kiln.keep(t.transpose(-1, -2)) : t;
    };
    const a = mk(M, K, s.transA), w = mk(K, N, s.transB);
    const t = timeIt(() => kiln.matmul(a, w).dispose());
    const flops = 2 * b * M * N * K;
    rows.push({ case: s.name, kiln: t, unit: 'GFLOP/s', kilnRate: flops / (t.medianMs * 1e6) });
  }
  const torch = runTorch('torch_gemm.py', ['--threads', String(threads), ...(only ? ['--only', only.join(',')] : [])]);
  if (torch.json)
    for (const r of rows) {
      const ref = torch.json.results.find((x: any) => x.name === r.case);
      if (!ref) continue;
      r.torch = { ms: ref.ms };
      r.torchRate = ref.gflops;
      r.speedup = ref.ms / r.kiln.medianMs;
    }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}

export function benchOverhead(threads: number): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const a = kiln.randn([16]), b = kiln.randn([16]);
  const disposed = timeIt(() => kiln.add(a, b).dispose(), { targetMs: 100 });
  const scoped = timeIt(() => kiln.tidy(() => { for (let i = 0; i < 100; i++) kiln.add(a, b); }), { targetMs: 100 });
  const perOpScoped = { ...scoped, medianMs: scoped.medianMs / 100, minMs: scoped.minMs / 100, maxMs: scoped.maxMs / 100 };
  const rows: BenchRow[] = [
    { case: 'add16 (add + dispose)', kiln: disposed, unit: 'ns/op', kilnRate: disposed.medianMs * 1e6 },
    { case: 'add16 (100 per tidy)', kiln: perOpScoped, unit: 'ns/op', kilnRate: perOpScoped.medianMs * 1e6 },
  ];
  const torch = runTorch('torch_overhead.py', ['--threads', String(threads)]);
  if (torch.json) {
    const ref = torch.json.results[0];
    for (const r of rows) {
      r.torch = { ms: ref.ms };
      r.torchRate = ref.ms * 1e6;
      r.speedup = ref.ms / r.kiln.medianMs;
    }
  }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}
