// `kiln bench diffusion`: one fused DDPM step (noise drawn in the kernel) vs the same step in
// PyTorch eager (improved-diffusion's formulas, torch.randn_like for the noise).
import * as kiln from '../src/index.js';
import { deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

export function benchDiffusion(threads: number, _only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const shape = device === 'cuda' ? [256, 256, 256] : [64, 64, 128];
  const sched = kiln.sched.linearNoiseSchedule(1000);
  kiln.manualSeed(0);
  const x = kiln.keep(kiln.randn(shape, { device })), eps = kiln.keep(kiln.randn(shape, { device }));
  const t = timeIt(() => {
    const r = kiln.ddpmStep(x, eps, 500, sched);
    r.prev.dispose();
    r.x0.dispose();
  }, { targetMs: 100, reps: 7, ...deviceTiming(device) });
  const bytes = x.size * 4 * 4; // read x and eps, write x_{t-1} and x0
  const rows: BenchRow[] = [{ case: `ddpm step ${shape.join('x')}`, kiln: t, unit: 'GB/s', kilnRate: bytes / (t.medianMs * 1e6) }];
  x.dispose();
  eps.dispose();
  const torch = runTorch('torch_diffusion.py', ['--threads', String(threads), '--device', device, '--shape', shape.join('x'), '--t', '500']);
  if (torch.json) {
    const ref = torch.json.results[0];
    rows[0].torch = { ms: ref.ms };
    rows[0].torchRate = bytes / (ref.ms * 1e6);
    rows[0].speedup = ref.ms / t.medianMs;
  }
  return { rows, torch: torch.json?.library ?? null, torchError: torch.error };
}
