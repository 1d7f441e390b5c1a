// `kiln bench train-step`: the in-context-learning GPT-2 training step (vector read-in, scalar
// read-out, MSE, Adam) in kiln against the same model in PyTorch (bench/reference/torch_train_step.py).
import * as kiln from '../src/index.js';
import { deviceTiming, runTorch, timeIt, type BenchDevice, type BenchRow } from './harness.js';

const SIZES: Record<string, { L: number; H: number; C: number }> = {
  small: { L: 4, H: 4, C: 128 },
  paper: { L: 12, H: 8, C: 256 },
};

/**
 * Peak RSS is each process's own high-water mark (kiln: this process, which runs only this
 * benchmark, small size first; PyTorch: one process per size), runtimes included on both sides.
 */
export function benchTrainStep(threads: number, only?: string[], device: BenchDevice = 'cpu'): { rows: BenchRow[]; torch: string | null; torchError?: string } {
  const rows: BenchRow[] = [];
  let torchName: string | null = null, torchError: string | undefined;
  const B = 64, T = 42, D = 10;
  for (const [name, { L, H, C }] of Object.entries(SIZES)) {
    if (only && !only.includes(name)) continue;
    kiln.manualSeed(0);
    const model = new kiln.nn.GPT({ nLayer: L, nHead: H, nEmbd: C, inputDim: D, outputDim: 1, blockSize: T });
    if (device === 'cuda') model.to('cuda');
    const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-4 });
    const x = kiln.randn([B, T, D], { device }), y = kiln.randn([B, T, 1], { device });
    const step = () => {
      opt.zeroGrad();
      kiln.tidy(() => kiln.mseLoss(model.forward(x), y).backward());
      opt.step();
    };
    const t = timeIt(step, { reps: 5, targetMs: 500, warmup: 3, ...deviceTiming(device) });
    const label = `${name} (${L}L ${H}H ${C}w, B${B} T${T})`;
    const kilnPeakRssMiB = process.resourceUsage().maxRSS / 1024;
    const row: BenchRow = { case: label, kiln: { ...t, peakRssMiB: kilnPeakRssMiB } as BenchRow['kiln'], unit: 'steps/s', kilnRate: 1000 / t.medianMs };
    const ref = runTorch('torch_train_step.py', ['--layers', `${L}`, '--heads', `${H}`, '--embd', `${C}`, '--threads', `${threads}`,
      '--steps', device === 'cuda' ? '50' : name === 'paper' ? '5' : '20', '--device', device, '--batch', `${B}`, '--positions', `${T}`, '--dim', `${D}`]);
    if (ref.json) {
      torchName = ref.json.framework;
      row.torch = { ms: ref.json.ms_per_step, peakRssMiB: ref.json.peak_rss_mib };
      row.torchRate = ref.json.steps_per_s;
      row.speedup = ref.json.ms_per_step / t.medianMs;
    } else torchError = ref.error;
    if (device === 'cpu') row.case += ` peak RSS kiln ${kilnPeakRssMiB.toFixed(0)} MiB / torch ${ref.json ? (ref.json.peak_rss_mib as number).toFixed(0) : '-'} MiB`;
    rows.push(row);
    for (const p of model.parameters()) p.dispose();
    x.dispose();
    y.dispose();
  }
  return { rows, torch: torchName, torchError };
}
