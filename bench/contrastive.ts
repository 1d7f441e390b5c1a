// `kiln bench contrastive`: fused NT-Xent forward + backward vs the same loss in PyTorch eager.
import * as kiln from '../src/index.js';
import { deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

const SHAPES: [number, number][] = [[512, 128], [2048, 256]];
const CUDA_SHAPES: [number, number][] = [[2048, 256], [8192, 256]];

export function benchContrastive(threads: number, _only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const rows: BenchRow[] = [];
  const shapes = device === 'cuda' ? CUDA_SHAPES : SHAPES;
  for (const [n, d] of shapes) {
    kiln.manualSeed(0);
    const z = kiln.keep(kiln.randn([2 * n, d], { requiresGrad: true, device }));
    const step = () => {
      const loss = kiln.ntXent(z, { temperature: 0.1 });
      loss.backward();
      loss.dispose();
      z.grad!.dispose();
      z.grad = null;
    };
    const t = timeIt(step, { targetMs: 100, reps: 7, ...deviceTiming(device) });
    const gflop = (3 * 2 * (2 * n) ** 2 * d) / 1e9; // three similarity-sized GEMMs
    rows.push({ case: `ntxent N=${n} D=${d}`, kiln: t, unit: 'GFLOP/s', kilnRate: gflop / (t.medianMs / 1e3) });
    z.dispose();
  }
  const torch = runTorch('torch_contrastive.py', ['--threads', String(threads), '--device', device, '--shapes', shapes.map(([n, d]) => `${n}x${d}`).join(',')]);
  if (torch.json)
    for (const r of rows) {
      const ref = torch.json.results.find((x: any) => x.name === r.case);
      if (!ref) continue;
      r.torch = { ms: ref.ms };
      r.torchRate = (r.kilnRate! * r.kiln.medianMs) / ref.ms;
      r.speedup = ref.ms / r.kiln.medianMs;
    }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}
