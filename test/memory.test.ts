// A long training loop keeps kiln.memory() constant and the process RSS flat.
import test from 'ava';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

test('a long loop inside one scope does not keep the tensors it disposed', (t) => {
  // gc() for a steady heap reading (the flag must be set before the context that reads it).
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const w = kiln.randn([8, 4], { requiresGrad: true }), x = kiln.randn([2, 8]);
  let heap0 = 0, heap1 = 0, live0 = 0;
  kiln.tidy(() => {
    const step = () => {
      // Like an optimizer loop written inside an outer scope: the inner scope hands the kept
      // gradient to the outer one, and it is disposed before the next step (zeroGrad).
      kiln.tidy(() => x.matmul(w).sum().backward());
      w.grad!.dispose();
      w.grad = null;
      kiln.add(x, 1).dispose();
    };
    for (let i = 0; i < 500; i++) step();
    gc();
    heap0 = process.memoryUsage().heapUsed;
    live0 = kiln.memory().tensors;
    for (let i = 0; i < 15000; i++) step();
    gc();
    heap1 = process.memoryUsage().heapUsed;
    t.is(kiln.memory().tensors, live0);
  });
  const growthMiB = (heap1 - heap0) / 2 ** 20;
  t.log(`JS heap grew ${growthMiB.toFixed(2)} MiB over 15,000 steps (30,000 disposed tensors) in one scope`);
  t.true(growthMiB < 3, `heap grew by ${growthMiB.toFixed(2)} MiB`);
  w.dispose();
  x.dispose();
});

test('tidy keeps the tensors returned in arrays, plain and null-prototype objects, Maps and Sets; not in class instances', (t) => {
  const live = kiln.memory().tensors;
  class Holder { constructor(readonly t: kiln.Tensor) {} }
  const r = kiln.tidy(() => {
    const bare = Object.create(null) as Record<string, kiln.Tensor>;
    bare.w = kiln.ones([2]);
    kiln.zeros([3]);  // made inside and not returned: disposed
    return { bare, map: new Map([['a', kiln.ones([1])]]), set: new Set([kiln.ones([4])]), list: [[kiln.ones([5])]],
      held: new Holder(kiln.ones([6])) };
  });
  t.deepEqual(Array.from(r.bare.w.dataSync()), [1, 1]);
  t.is(r.map.get('a')!.item(), 1);
  t.is([...r.set][0].size, 4);
  t.is(r.list[0][0].size, 5);
  t.true(r.held.t.isDisposed, 'a class instance is not walked');
  // A safetensors load's record (null prototype) survives the scope it was loaded in.
  const src = kiln.tensor([1, 2, 3]);
  const bytes = kiln.io.encodeSafetensors({ w: src });
  src.dispose();
  const loaded = kiln.tidy(() => kiln.io.decodeSafetensors(bytes));
  t.deepEqual(Array.from(loaded.tensors.w.dataSync()), [1, 2, 3]);
  for (const x of [r.bare.w, r.map.get('a')!, [...r.set][0], r.list[0][0], loaded.tensors.w]) x.dispose();
  t.is(kiln.memory().tensors, live);
});
