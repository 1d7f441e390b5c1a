// Where the time of a small training step goes (the `kiln bench train-step` small model: GPT 4L 4H
// 128w on B64 x T42 x 10 inputs, Adam): run from the repository root after `npx tsc`,
//   node scripts/profile-train-step.mjs [cpu|cuda] [OUT_DIR]
// Prints ms/step with one synchronisation per 100 steps (host and device overlap) and with one per
// step, the native calls per step by name (each is a kernel launch or a host-side op), and the top
// functions by self time in a V8 CPU profile of 100 steps; writes OUT_DIR/train-step.cpuprofile.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import * as kiln from '../dist/src/index.js';
import { N } from '../dist/src/native.js';

const device = process.argv[2] ?? 'cuda';
const out = process.argv[3] ?? '.';
const sync = () => { if (device === 'cuda') kiln.cuda.synchronize(); };
kiln.setNumThreads(2);
kiln.manualSeed(0);
const model = new kiln.nn.GPT({ nLayer: 4, nHead: 4, nEmbd: 128, inputDim: 10, outputDim: 1, blockSize: 42 });
if (device === 'cuda') model.to('cuda');
const opt = new kiln.optim.Adam(model.parameters(), { lr: 1e-4 });
const x = kiln.randn([64, 42, 10], { device }), y = kiln.randn([64, 42, 1], { device });
const step = () => {
  opt.zeroGrad();
  kiln.tidy(() => kiln.mseLoss(model.forward(x), y).backward());
  opt.step();
};
for (let i = 0; i < 20; i++) step();
sync();

const timeSteps = (n, each) => {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) { step(); if (each) sync(); }
  sync();
  return (performance.now() - t0) / n;
};
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };
say(`device ${device}: ${timeSteps(100, false).toFixed(3)} ms/step (one sync per 100 steps), ${timeSteps(100, true).toFixed(3)} ms/step (sync every step)`);

// Native calls per step, by name.
const counts = new Map();
let wrapped = 0;
for (const name of Object.keys(N)) {
  const f = N[name];
  if (typeof f !== 'function') continue;
  try {
    N[name] = function (...args) { counts.set(name, (counts.get(name) ?? 0) + 1); return f.apply(this, args); };
    if (N[name] !== f) wrapped++;
  } catch { /* read-only property: not counted */ }
}
for (let i = 0; i < 10; i++) step();
sync();
const per = [...counts].map(([k, v]) => [k, v / 10]).sort((a, b) => b[1] - a[1]);
say(`native calls per step (${wrapped} functions wrapped): total ${per.reduce((s, [, v]) => s + v, 0)}; ` + per.map(([k, v]) => `${k} ${v}`).join(', '));
say(`ms/step with the counting wrappers: ${timeSteps(50, false).toFixed(3)}`);

// CPU profile (self time by function).
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 50 });
await session.post('Profiler.start');
timeSteps(100, false);
const { profile } = await session.post('Profiler.stop');
writeFileSync(`${out}/train-step.cpuprofile`, JSON.stringify(profile));
const dt = profile.timeDeltas, self = new Map(), byId = new Map(profile.nodes.map((n) => [n.id, n]));
for (let i = 0; i < profile.samples.length; i++) {
  const n = byId.get(profile.samples[i]);
  const cf = n.callFrame, key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
say(`self time, top 40 of ${(total / 1000).toFixed(0)} ms profiled:`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) say(`  ${(100 * v / total).toFixed(1).padStart(5)}%  ${k}`);
writeFileSync(`${out}/train-step-profile.txt`, lines.join('\n') + '\n');
