// `kiln bench elementwise`: memory-bound elementwise kernels (add, broadcast mul, gelu, exp) on
// float32 tensors, as GB/s (bytes read + written) against the same ops in PyTorch, and against the
// device's copy bandwidth measured by PyTorch in the same run (the roofline for these ops).
import * as kiln from '../src/index.js';
import { deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

export function benchElementwise(threads: number, only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const n = device === 'cuda' ? 1 << 26 : 1 << 22;
  const cols = 1024;
  kiln.manualSeed(0);
  const a = kiln.randn([n / cols, cols], { device }), b = kiln.randn([n / cols, cols], { device });
  const row = kiln.randn([cols], { device });
  const cases: [string, () => kiln.Tensor, number][] = [
    ['copy', () => kiln.clone(a), 2],
    ['add', () => kiln.add(a, b), 3],
    ['mul broadcast row', () => kiln.mul(a, row), 2],
    ['gelu tanh', () => kiln.gelu(a, 'tanh'), 2],
    ['exp', () => kiln.exp(a), 2],
  ];
  const rows: BenchRow[] = [];
  for (const [name, fn, touches] of cases) {
    if (only && !only.includes(name)) continue;
    const t = timeIt(() => fn().dispose(), { reps: 7, targetMs: 100, ...deviceTiming(device) });
    rows.push({ case: name, kiln: t, unit: 'GB/s', kilnRate: (touches * 4 * n) / (t.medianMs * 1e6) });
  }
  for (const x of [a, b, row]) x.dispose();
  const torch = runTorch('torch_elementwise.py', ['--threads', String(threads), '--device', device, '--n', String(n)]);
  if (torch.json) {
    const copy = torch.json.results.find((x: any) => x.name === 'copy');
    for (const r of rows) {
      const ref = torch.json.results.find((x: any) => x.name === r.case);
      if (!ref) continue;
      r.torch = { ms: ref.ms, copyGBps: copy?.gbps, kilnFractionOfCopy: copy ? r.kilnRate! / copy.gbps : undefined };
      r.torchRate = ref.gbps;
      r.speedup = ref.ms / r.kiln.medianMs;
    }
  }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}
