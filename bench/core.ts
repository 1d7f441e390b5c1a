// Core kernel benchmarks: `gemm` (shapes in bench/gemm_shapes.txt) and `overhead` (per-op dispatch).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { benchDir, runTorch, timeIt, type BenchRow } from './harness.js';

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

export function benchGemm(threads: number, only?: string[]): { rows: BenchRow[]; torch: string | null; torchError?: string } {
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
