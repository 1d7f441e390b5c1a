// A long training loop keeps kiln.memory() constant and the process RSS flat.
import test from 'ava';
import * as kiln from '../src/index.js';

test('5,000 training steps: live tensors and bytes constant, RSS flat', (t) => {
  kiln.manualSeed(1);
  const x = kiln.randn([64, 32]);
  const y = kiln.randint(0, 8, [64]);
  // Sizes chosen so both small (V8-heap) and large (native) storages are exercised.
  let params = [kiln.randn([32, 64], { std: 0.1 }), kiln.zeros([64]), kiln.randn([64, 8], { std: 0.1 })].map((p) => p.requiresGrad_());
  const losses: number[] = [];
  const step = () =>
    kiln.tidy(() => {
      const [w1, b1, w2] = params;
      const h = kiln.layerNorm(x.matmul(w1).add(b1), 64).gelu();
      const loss = kiln.crossEntropy(h.matmul(w2), y);
      loss.backward();
      const next = kiln.noGrad(() => params.map((p) => kiln.keep(p.sub(p.grad!.mul(0.05))).requiresGrad_()));
      for (const p of params) p.dispose();
      params = next;
      return loss.item();
    });
  for (let i = 0; i < 200; i++) losses.push(step());
  const before = kiln.memory();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 5000; i++) losses.push(step());
  const after = kiln.memory();
  const rss1 = process.memoryUsage().rss;
  t.is(after.tensors, before.tensors);
  t.is(after.bytes, before.bytes);
  t.is(after.cpu.nativeBytes, before.cpu.nativeBytes);
  const growthMiB = (rss1 - rss0) / 2 ** 20;
  t.log(`RSS ${(rss0 / 2 ** 20).toFixed(1)} -> ${(rss1 / 2 ** 20).toFixed(1)} MiB over 5,000 steps; live tensors ${after.tensors}`);
  t.true(growthMiB < 32, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
  t.true(losses.at(-1)! < losses[0] * 0.5, 'the loop really trains');
});
