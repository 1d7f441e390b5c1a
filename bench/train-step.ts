// The in-context-learning GPT-2 training step (vector read-in, scalar read-out, MSE, Adam) in kiln,
// timed against the same model in PyTorch (bench/reference/torch_train_step.py) in the same run.
// Usage: npx tsx bench/train-step.ts [--layers 4 --heads 4 --embd 128 --threads 2 --steps 20] [--no-torch]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as kiln from '../src/index.js';

const args = process.argv.slice(2);
const opt = (k: string, d: number) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const L = opt('layers', 4), H = opt('heads', 4), C = opt('embd', 128), threads = opt('threads', 2), steps = opt('steps', 20);
const B = opt('batch', 64), T = opt('positions', 42), D = opt('dim', 10);
kiln.setNumThreads(threads);
kiln.manualSeed(0);
const model = new kiln.nn.GPT({ nLayer: L, nHead: H, nEmbd: C, inputDim: D, outputDim: 1, blockSize: T });
const optim = new kiln.optim.Adam(model.parameters(), { lr: 1e-4 });
const x = kiln.randn([B, T, D]);
const y = kiln.randn([B, T, 1]);
const step = () => {
  optim.zeroGrad();
  kiln.tidy(() => kiln.mseLoss(model.forward(x), y).backward());
  optim.step();
};
for (let i = 0; i < 3; i++) step();
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const dt = (performance.now() - t0) / steps / 1000;
const k = { framework: 'kiln', steps_per_s: 1 / dt, ms_per_step: dt * 1000, threads };
let torch: { steps_per_s: number; framework: string } | null = null;
if (!args.includes('--no-torch')) {
  const script = fileURLToPath(new URL('./reference/torch_train_step.py', import.meta.url));
  const r = spawnSync('/usr/bin/python3', [script, '--layers', `${L}`, '--heads', `${H}`, '--embd', `${C}`, '--threads', `${threads}`,
    '--steps', `${steps}`, '--batch', `${B}`, '--positions', `${T}`, '--dim', `${D}`], { encoding: 'utf8' });
  if (r.status === 0) torch = JSON.parse(r.stdout.trim().split('\n').pop()!);
  else console.error(`PyTorch reference failed: ${r.stderr}`);
}
const shape = `${L} layers, ${H} heads, width ${C}, batch ${B}, ${T} positions, read-in ${D}, ${threads} threads`;
console.log(JSON.stringify({ shape, kiln: k, torch, ratio: torch ? k.steps_per_s / torch.steps_per_s : null, peakRssMiB: process.memoryUsage().rss / 2 ** 20 }));
