// Benchmark harness: warm-up, calibrated inner loops, median/min/max of repeats, and the PyTorch
// reference run in the same invocation so every figure is a ratio measured side by side.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as kiln from '../src/index.js';

export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  reps: number;
  inner: number;
}

/** Times fn: calibrates an inner loop to ~targetMs per repeat, then takes `reps` repeats. */
export function timeIt(fn: () => void, opts: { reps?: number; targetMs?: number; warmup?: number; sync?: () => void } = {}): Timing {
  const reps = opts.reps ?? 7, targetMs = opts.targetMs ?? 50;
  // On a GPU the work is queued: `sync` waits for it, so each measured span covers finished work.
  const sync = opts.sync ?? (() => {});
  // Warm up for a while (JIT tiers, caches, allocator pools), and calibrate from the warm calls.
  const warmMs = Math.max(targetMs * 2, 100);
  let calls = 0;
  let t0 = performance.now();
  do {
    fn();
    calls++;
    sync();
  } while (calls < (opts.warmup ?? 2) || performance.now() - t0 < warmMs);
  const one = Math.max((performance.now() - t0) / calls, 1e-5);
  const inner = Math.max(1, Math.min(10_000_000, Math.floor(targetMs / one)));
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    sync();
    times.push((performance.now() - t0) / inner);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], maxMs: times[times.length - 1], reps, inner };
}

export const benchDir = (() => {
  // bench/ when run through tsx, dist/bench/ when compiled: the Python scripts stay in bench/.
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [here, join(here, '..', '..', 'bench')]) if (existsSync(join(p, 'reference'))) return p;
  return here;
})();

export type BenchDevice = 'cpu' | 'cuda';

/** timeIt's options for a device: on cuda every repeat ends with a device synchronisation. */
export function deviceTiming(device: BenchDevice): { sync?: () => void } {
  return device === 'cuda' ? { sync: () => kiln.cuda.synchronize() } : {};
}

export const TORCH_PYTHON = process.env.KILN_TORCH_PYTHON ?? '/usr/bin/python3';

/** Runs a PyTorch reference script; returns its JSON, or null with the reason when unavailable. */
export function runTorch(script: string, args: string[]): { json: any; error?: undefined } | { json: null; error: string } {
  const path = join(benchDir, 'reference', script);
  if (!existsSync(TORCH_PYTHON)) return { json: null, error: `${TORCH_PYTHON} not found` };
  const r = spawnSync(TORCH_PYTHON, [path, ...args], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, OMP_NUM_THREADS: undefined } });
  if (r.status !== 0) return { json: null, error: (r.stderr || r.error?.message || 'failed').trim().split('\n').slice(-1)[0] };
  try {
    return { json: JSON.parse(r.stdout) };
  } catch {
    return { json: null, error: 'PyTorch script printed no JSON' };
  }
}

export interface BenchRow {
  case: string;
  kiln: Timing & { peakRssMiB?: number };
  torch?: { ms: number } & Record<string, unknown>;
  /** torch time / kiln time: above 1 means kiln is faster. */
  speedup?: number;
  unit?: string;
  kilnRate?: number;
  torchRate?: number;
}

export interface BenchReport {
  bench: string;
  device: string;
  threads: number;
  machine: string;
  torch: string | null;
  torchError?: string;
  rows: BenchRow[];
  /** Lines printed after the table (e.g. the reference's per-backend times). */
  notes?: string[];
  date: string;
}

/** Writes the report as JSON (`kiln bench <name> --json FILE`). */
export function saveReport(path: string, r: BenchReport): void {
  writeFileSync(path, JSON.stringify(r, null, 2) + '\n');
}

export function formatReport(r: BenchReport): string {
  const lines = [`kiln bench ${r.bench} (device ${r.device}, ${r.threads} threads, ${r.machine}; reference: ${r.torch ?? `none (${r.torchError})`})`];
  const w = Math.max(...r.rows.map((x) => x.case.length), 4);
  const unit = r.rows[0]?.unit ?? '';
  lines.push(`${'case'.padEnd(w)}  ${'kiln ms'.padStart(10)}  ${'(min-max)'.padStart(19)}  ${'torch ms'.padStart(10)}  ${('kiln ' + unit).padStart(12)}  ${('torch ' + unit).padStart(12)}  ${'ratio'.padStart(7)}`);
  for (const x of r.rows) {
    const f = (v: number | undefined, d = 4) => (v === undefined ? '-' : v < 0.01 ? v.toExponential(2) : v.toFixed(d));
    lines.push(
      `${x.case.padEnd(w)}  ${f(x.kiln.medianMs).padStart(10)}  ${`(${f(x.kiln.minMs)}-${f(x.kiln.maxMs)})`.padStart(19)}  ${f(x.torch?.ms).padStart(10)}  ${f(x.kilnRate, 1).padStart(12)}  ${f(x.torchRate, 1).padStart(12)}  ${(x.speedup === undefined ? '-' : x.speedup.toFixed(2) + 'x').padStart(7)}`,
    );
  }
  lines.push(`ratio = PyTorch time / kiln time (above 1: kiln is faster); kiln: median (min-max) of ${r.rows[0]?.kiln.reps ?? 0} repeats after warm-up, PyTorch: median of its repeats, same run`);
  for (const n of r.notes ?? []) lines.push(n);
  return lines.join('\n');
}
