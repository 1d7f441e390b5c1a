// `kiln demo` (and `npm start` for now): a 2-layer MLP learns a synthetic 4-class task on the CPU.
import * as kiln from '../index.js';
import { checkFlags, flagInt, MAX_SEED, parseArgs, UsageError, type Command } from './args.js';

export interface DemoResult {
  losses: number[];
  accuracy: number;
}

/** Trains y = argmax(x W*) with a 16-64-4 ReLU MLP by full-batch gradient descent. */
export function trainDemo(steps = 300, seed = 0, log?: (step: number, loss: number) => void): DemoResult {
  kiln.manualSeed(seed);
  return kiln.tidy(() => {
    const x = kiln.randn([512, 16]);
    const y = x.matmul(kiln.randn([16, 4])).argmax(1);
    let params = [
      kiln.randn([16, 64], { std: Math.sqrt(2 / 16) }), kiln.zeros([64]),
      kiln.randn([64, 4], { std: Math.sqrt(2 / 64) }), kiln.zeros([4]),
    ].map((p) => p.requiresGrad_());
    const lr = 0.5;
    const losses: number[] = [];
    for (let step = 0; step < steps; step++) {
      const loss = kiln.tidy(() => {
        const [w1, b1, w2, b2] = params;
        const l = kiln.crossEntropy(x.matmul(w1).add(b1).relu().matmul(w2).add(b2), y);
        l.backward();
        // Plain gradient descent: the updated parameters replace the old ones.
        const next = kiln.noGrad(() => params.map((p) => kiln.keep(p.sub(p.grad!.mul(lr))).requiresGrad_()));
        for (const p of params) p.dispose();
        params = next;
        return l.item();
      });
      losses.push(loss);
      if (log && (step % 50 === 0 || step === steps - 1)) log(step, loss);
    }
    const [w1, b1, w2, b2] = params;
    const pred = x.matmul(w1).add(b1).relu().matmul(w2).add(b2).argmax(1);
    const accuracy = pred.eq(y).sum().item() / 512;
    for (const p of params) p.dispose();
    return { losses, accuracy };
  });
}

export const command: Command = {
  name: 'demo',
  summary: 'train a 2-layer MLP on a synthetic task',
  async run(argv) {
    const { positional, flags } = parseArgs(argv);
    if (flags.help) {
      console.log('usage: kiln demo [--steps N] [--seed S] [--json]   (defaults: 300 steps, seed 0)');
      return 0;
    }
    if (positional.length) throw new UsageError(`demo: unexpected argument '${positional[0]}'`);
    checkFlags(flags, ['steps', 'seed', 'json'], 'demo');
    const steps = flagInt(flags, 'steps', 300, 1)!;
    const seed = flagInt(flags, 'seed', 0, 0, MAX_SEED)!;
    const t0 = performance.now();
    const r = trainDemo(steps, seed, flags.json ? undefined : (s, l) => console.log(`step ${String(s).padStart(4)}  loss ${l.toFixed(4)}`));
    const secs = (performance.now() - t0) / 1000;
    if (flags.json) console.log(JSON.stringify({ ...r, seconds: secs }));
    else console.log(`trained ${steps} steps in ${secs.toFixed(2)} s: loss ${r.losses[0].toFixed(3)} -> ${r.losses.at(-1)!.toFixed(3)}, train accuracy ${(100 * r.accuracy).toFixed(1)}%`);
    return 0;
  },
};
