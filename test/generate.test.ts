// GPT.generate against a plain twin: greedy equals argmax over an uncached forward of the whole
// sequence so far (its last blockSize tokens), across prompts longer than blockSize and generation
// past it; sampling is seeded per prompt (batch splits do not change it); top-k 1 is greedy.
import test from 'ava';
import * as kiln from '../src/index.js';

function tinyGPT(seed: number, blockSize = 8): InstanceType<typeof kiln.nn.GPT> {
  kiln.manualSeed(seed);
  return new kiln.nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: 11, blockSize });
}

/** Greedy decoding without a cache: the full forward of the last blockSize tokens at every step. */
function naiveGreedy(model: InstanceType<typeof kiln.nn.GPT>, prompt: number[], n: number): number[] {
  const seq = prompt.slice();
  const out: number[] = [];
  model.eval();
  for (let s = 0; s < n; s++) {
    const ctx = seq.slice(-model.config.blockSize);
    const row = kiln.tidy(() => kiln.noGrad(() => {
      const logits = model.forward(kiln.tensor([ctx], { dtype: 'int32' }));
      return Array.from(logits.narrow(1, ctx.length - 1, 1).dataSync());
    }));
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
    seq.push(best);
    out.push(best);
  }
  return out;
}

test('greedy generate equals argmax over uncached forwards, past blockSize and for prompts longer than it', (t) => {
  const model = tinyGPT(3);
  const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5]];
  const live = kiln.memory().tensors;
  const got = model.generate(prompts, { maxNewTokens: 12 });
  t.is(kiln.memory().tensors, live, 'no tensor left behind');
  prompts.forEach((p, i) => t.deepEqual(got[i], naiveGreedy(model, p, 12), `prompt ${i}`));
  t.deepEqual(model.generate(prompts, { maxNewTokens: 12, maxBatch: 1 }), got);
  t.deepEqual(model.generate(prompts, { maxNewTokens: 12, temperature: 0.7, topK: 1, seed: 5 }), got, 'top-k 1 is greedy');
  t.true(model.training === false);
});

test('sampling: a seed repeats, prompt i draws stream i (batch splits agree), manualSeed repeats the default seed', (t) => {
  const model = tinyGPT(4);
  const prompts = [[1, 2], [3, 4, 5], [1, 2]];
  const a = model.generate(prompts, { maxNewTokens: 20, temperature: 1.5, seed: 42 });
  t.deepEqual(model.generate(prompts, { maxNewTokens: 20, temperature: 1.5, seed: 42, maxBatch: 2 }), a);
  t.notDeepEqual(model.generate(prompts, { maxNewTokens: 20, temperature: 1.5, seed: 43 }), a);
  t.notDeepEqual(a[0], a[2], 'two equal prompts draw different streams');
  t.true(a.every((r) => r.length === 20 && r.every((id) => Number.isInteger(id) && id >= 0 && id < 11)));
  const k3 = model.generate(prompts, { maxNewTokens: 20, temperature: 1.5, topK: 3, seed: 42 });
  t.true(k3.every((r) => r.length === 20));
  kiln.manualSeed(9);
  const d1 = model.generate(prompts, { maxNewTokens: 10, temperature: 1 });
  const d2 = model.generate(prompts, { maxNewTokens: 10, temperature: 1 });
  kiln.manualSeed(9);
  t.deepEqual(model.generate(prompts, { maxNewTokens: 10, temperature: 1 }), d1);
  t.notDeepEqual(d2, d1, 'successive calls draw new seeds');
});

test('eosId ends a prompt early (not in its output); bad input is a KilnError', (t) => {
  const model = tinyGPT(3);
  const greedy = model.generate([[1, 2, 3]], { maxNewTokens: 12 })[0];
  const eos = greedy[4];
  const cut = greedy.indexOf(eos);
  t.deepEqual(model.generate([[1, 2, 3]], { maxNewTokens: 12, eosId: eos })[0], greedy.slice(0, cut));
  t.deepEqual(model.generate([[1, 2]], { maxNewTokens: 0 }), [[]]);
  for (const [prompts, opts, re] of [
    [[[1, 11]], { maxNewTokens: 2 }, /prompt 0 token 1 is 11, outside \[0, 11\)/],
    [[[]], { maxNewTokens: 2 }, /prompt 0 must be a non-empty array/],
    [[[1]], { maxNewTokens: -1 }, /maxNewTokens must be an integer >= 0/],
    [[[1]], { maxNewTokens: 2, temperature: -1 }, /temperature/],
    [[[1]], { maxNewTokens: 2, topK: 1.5 }, /topK must be an integer/],
    [[[1]], { maxNewTokens: 2, eosId: 99 }, /eosId must be a token id/],
  ] as const)
    t.throws(() => model.generate(prompts as unknown as number[][], opts as kiln.nn.GenerateOptions), { instanceOf: kiln.KilnError, message: re });
  const vec = new kiln.nn.GPT({ nLayer: 1, nHead: 1, nEmbd: 4, inputDim: 3, blockSize: 4 });
  t.throws(() => vec.generate([[1]], { maxNewTokens: 1 }), { instanceOf: kiln.KilnError, message: /token-mode GPT/ });
});
