// TransformerEncoder (bidirectional, timestep hook), ViT and Seq2Seq: shapes, information flow
// (what may and may not influence an output), and that each learns a tiny task.
import test from 'ava';
import * as kiln from '../src/index.js';
const { nn } = kiln;

test('timestep embedding is the sinusoidal formula', (t) => {
  const e = nn.timestepEmbedding(kiln.tensor([0, 3]), 4).toArray() as number[][];
  const f = [1, Math.exp(-Math.log(10000) / 2)];
  t.deepEqual(e[0], [0, 0, 1, 1]);
  [Math.sin(3 * f[0]), Math.sin(3 * f[1]), Math.cos(3 * f[0]), Math.cos(3 * f[1])].forEach((v, i) => t.true(Math.abs(e[1][i] - v) < 1e-6));
});

test('TransformerEncoder is bidirectional and conditions on the timestep', (t) => {
  kiln.manualSeed(1);
  const enc = new nn.TransformerEncoder({ nLayer: 2, nHead: 2, nEmbd: 16, maxLen: 6, inputDim: 3, outputDim: 3, timestep: true });
  const x = kiln.randn([1, 6, 3]);
  const ts = kiln.tensor([5]);
  const y = enc.forward(x, { t: ts }).dataSync();
  const x2 = kiln.concat([x.narrow(1, 0, 5), kiln.randn([1, 1, 3])], 1);
  const y2 = enc.forward(x2, { t: ts }).dataSync();
  t.true(Math.abs(y[0] - y2[0]) > 1e-7, 'position 0 sees the last position');
  const y3 = enc.forward(x, { t: kiln.tensor([50]) }).dataSync();
  t.true(Math.abs(y[0] - y3[0]) > 1e-7, 'the timestep changes the output');
  t.deepEqual(enc.forward(x).shape, [1, 6, 3]);
});

test('a float64 TransformerEncoder embeds int32 timesteps in float64', (t) => {
  kiln.manualSeed(4);
  const enc = new nn.TransformerEncoder({ nLayer: 1, nHead: 2, nEmbd: 8, maxLen: 4, inputDim: 3, timestep: true, dtype: 'float64' });
  const x = kiln.randn([2, 4, 3], { dtype: 'float64' });
  const a = enc.forward(x, { t: kiln.tensor([997, 13], { dtype: 'int32' }) }).dataSync();
  const b = enc.forward(x, { t: kiln.tensor([997, 13], { dtype: 'float64' }) }).dataSync();
  const d = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
  t.true(d < 1e-12, `int32 vs float64 timesteps differ by ${d}`);
});

test('TransformerEncoder refuses timesteps that would grow the batch', (t) => {
  const enc = new nn.TransformerEncoder({ nLayer: 1, nHead: 2, nEmbd: 8, maxLen: 4, inputDim: 3, timestep: true });
  const err = t.throws(() => enc.forward(kiln.randn([1, 4, 3]), { t: kiln.tensor([1, 2, 3]) }));
  t.regex(`${(err as kiln.KilnError).code} ${err!.message}`, /SHAPE_MISMATCH TransformerEncoder: t \[3\] for input \[1, 4, 3\]/);
  t.throws(() => enc.forward(kiln.randn([2, 4, 3]), { t: kiln.tensor([1, 2, 3]) }), { message: /TransformerEncoder: t \[3\]/ });
  t.deepEqual(enc.forward(kiln.randn([2, 4, 3]), { t: kiln.tensor([7]) }).shape, [2, 4, 8], 'one timestep for the whole batch');
  t.deepEqual(enc.forward(kiln.randn([2, 4, 3]), { t: kiln.tensor([7, 8]) }).shape, [2, 4, 8]);
});

test('ViT patchifies channel-major and learns to tell two image classes apart', (t) => {
  kiln.manualSeed(2);
  const vit = new nn.ViT({ imageSize: 4, patchSize: 2, channels: 1, numClasses: 2, nLayer: 1, nHead: 2, nEmbd: 16 });
  const img = kiln.arange(0, 16, 1, { dtype: 'float32' }).reshape([1, 1, 4, 4]);
  t.deepEqual(vit.patchify(img).toArray(), [[[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]]);
  // Class 0: bright left half; class 1: bright right half.
  const xs: number[] = [], ys: number[] = [];
  for (let i = 0; i < 16; i++) {
    const c = i % 2;
    for (let r = 0; r < 4; r++) for (let q = 0; q < 4; q++) xs.push((q < 2) === (c === 0) ? 1 : 0);
    ys.push(c);
  }
  const x = kiln.tensor(xs, { shape: [16, 1, 4, 4] }).add(kiln.randn([16, 1, 4, 4]).mul(0.1));
  const y = kiln.tensor(ys, { dtype: 'int32' });
  const opt = new kiln.optim.AdamW(vit.parameters(), { lr: 1e-2, weightDecay: 0 });
  let loss = 0;
  for (let s = 0; s < 40; s++) {
    opt.zeroGrad();
    loss = kiln.tidy(() => {
      const l = kiln.crossEntropy(vit.forward(x), y);
      l.backward();
      return l.item();
    });
    opt.step();
  }
  t.true(loss < 0.1, `final loss ${loss}`);
});

test('Seq2Seq: decoder is causal over the target, sees the whole source, and learns to copy', (t) => {
  kiln.manualSeed(3);
  const m = new nn.Seq2Seq({ srcVocabSize: 6, tgtVocabSize: 6, nLayer: 1, nHead: 2, nEmbd: 16, maxLen: 5 });
  const src = kiln.randint(1, 6, [8, 4]);
  const tgtIn = kiln.concat([kiln.zeros([8, 1], { dtype: 'int32' }), src.narrow(1, 0, 3)], 1);
  const y0 = m.forward(src, tgtIn).dataSync();
  const tgt2 = kiln.concat([tgtIn.narrow(1, 0, 3), kiln.full([8, 1], 5, 'int32')], 1);
  const y1 = m.forward(src, tgt2).dataSync();
  const V = 6, T = 4;
  t.true(Array.from({ length: 3 * V }, (_, i) => i).every((i) => Math.abs(y0[i] - y1[i]) < 1e-6), 'early positions ignore later targets');
  const src2 = kiln.concat([src.narrow(1, 0, 3), kiln.full([8, 1], 1, 'int32')], 1);
  const y2 = m.forward(src2, tgtIn).dataSync();
  t.true(Math.abs(y0[0] - y2[0]) > 1e-7, 'the first target position sees the last source token');
  t.deepEqual(m.forward(src, tgtIn).shape, [8, T, V]);
  const opt = new kiln.optim.Adam(m.parameters(), { lr: 1e-2 });
  let loss = 0;
  for (let s = 0; s < 100; s++) {
    opt.zeroGrad();
    loss = kiln.tidy(() => {
      const l = kiln.crossEntropy(m.forward(src, tgtIn).reshape([-1, V]), src.reshape([-1]));
      l.backward();
      return l.item();
    });
    opt.step();
  }
  t.true(loss < 0.15, `final copy loss ${loss}`);
});

test('Seq2Seq decodeCached: step by step equals decode over the whole prefix; shareEmbeddings ties one table; misuse refused', (t) => {
  kiln.manualSeed(4);
  const m = new nn.Seq2Seq({ srcVocabSize: 30, tgtVocabSize: 30, nLayer: 2, nHead: 2, nEmbd: 16, maxLen: 10, shareEmbeddings: true }).eval();
  const untied = new nn.Seq2Seq({ srcVocabSize: 30, tgtVocabSize: 30, nLayer: 2, nHead: 2, nEmbd: 16, maxLen: 10 });
  t.is(m.tgtEmbed.weight, m.encoder.wte!.weight);
  t.is(untied.numParameters() - m.numParameters(), 30 * 16);
  const src = kiln.randint(0, 30, [3, 6]), tgt = kiln.randint(0, 30, [3, 8]);
  const mask = kiln.fromTyped(Float32Array.from({ length: 18 }, (_, i) => (i >= 6 && i % 6 >= 3) || (i >= 12 && i % 6 === 5) ? 1 : 0), [3, 1, 1, 6]);
  kiln.noGrad(() => {
    const mem = m.encode(src, mask);
    const full = m.decode(tgt, mem, mask).dataSync();
    const cache = m.createCache();
    let worst = 0;
    for (const [a, b] of [[0, 1], [1, 4], [4, 5], [5, 8]]) {
      const part = m.decodeCached(tgt.narrow(1, a, b - a).contiguous(), mem, mask, cache).dataSync();
      for (let i = 0; i < 3; i++) for (let p = a; p < b; p++) for (let j = 0; j < 30; j++)
        worst = Math.max(worst, Math.abs(part[(i * (b - a) + p - a) * 30 + j] - full[(i * 8 + p) * 30 + j]));
    }
    t.true(worst < 1e-5, `largest difference ${worst}`);
    t.is(cache.length, 8);
    t.throws(() => m.decodeCached(tgt.narrow(1, 0, 3).contiguous(), mem, mask, cache), { message: /SHAPE_MISMATCH|positions 8 \.\. 10 exceed maxLen 10/ });
    t.is(cache.length, 8, 'a refused call leaves the cache as it was');
    t.throws(() => m.decodeCached(tgt.narrow(0, 0, 2).narrow(1, 0, 1).contiguous(), mem.narrow(0, 0, 2), null, cache), { message: /cache holds 3 rows/ });
    cache.dispose();
    t.throws(() => m.decodeCached(tgt.narrow(1, 0, 1).contiguous(), mem, mask, cache), { message: /live one from this model/ });
    m.train();
    t.notThrows(() => m.decodeCached(tgt.narrow(1, 0, 1).contiguous(), mem, mask, m.createCache()), 'no dropout, so training mode is harmless');
  });
  t.throws(() => m.eval().decodeCached(tgt.narrow(1, 0, 1).contiguous(), m.encode(src), null, m.createCache()), { message: /runs under kiln.noGrad only/ });
  t.throws(() => new nn.Seq2Seq({ srcVocabSize: 30, tgtVocabSize: 31, nLayer: 1, nHead: 2, nEmbd: 16, maxLen: 10, shareEmbeddings: true }), { message: /shareEmbeddings needs srcVocabSize === tgtVocabSize/ });
});

test('bad model input is a KilnError naming the model: configs, tensors, masks, lengths', (t) => {
  const code = (f: () => unknown) => {
    try {
      f();
      return 'no error';
    } catch (e) {
      return e instanceof kiln.KilnError ? `${e.code} ${e.message}` : `not a KilnError: ${e}`;
    }
  };
  const is = (f: () => unknown, re: RegExp, what: string) => t.regex(code(f), re, what);
  kiln.tidy(() => {
    // Configs: missing, non-integer or non-positive sizes.
    is(() => new kiln.nn.GPT(undefined as never), /INVALID_ARGUMENT GPT: needs a config/, 'GPT without a config');
    is(() => new kiln.nn.TransformerEncoder({ nLayer: -1, nHead: 2, nEmbd: 8, maxLen: 4, vocabSize: 5 }), /INVALID_ARGUMENT TransformerEncoder: nLayer/, 'encoder nLayer');
    is(() => new kiln.nn.TransformerEncoder({ nLayer: 1.5, nHead: 2, nEmbd: 8, maxLen: 4, vocabSize: 5 }), /INVALID_ARGUMENT TransformerEncoder: nLayer/, 'encoder nLayer 1.5');
    is(() => new kiln.nn.ViT({ imageSize: 8, patchSize: -4, channels: 1, numClasses: 2, nLayer: 1, nHead: 2, nEmbd: 8 }), /INVALID_ARGUMENT ViT: patchSize/, 'ViT patchSize');
    is(() => new kiln.nn.Seq2Seq({ srcVocabSize: 5, tgtVocabSize: 5, nLayer: NaN, nHead: 2, nEmbd: 8, maxLen: 6 }), /INVALID_ARGUMENT Seq2Seq: nLayer/, 'Seq2Seq nLayer');
    is(() => new kiln.nn.MLP(8, { activation: 'swish' as never }), /INVALID_ARGUMENT MLP: activation/, 'unknown activation');
    is(() => kiln.nn.timestepEmbedding(kiln.tensor([1, 2]), 8, 0), /INVALID_ARGUMENT timestepEmbedding: maxPeriod/, 'maxPeriod 0');
    is(() => kiln.nn.timestepEmbedding(kiln.tensor([1, 2]), 4.5), /INVALID_ARGUMENT timestepEmbedding: dim/, 'dim 4.5');
    // Inputs that are not tensors, or of the wrong rank / dtype.
    const gpt = new kiln.nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 8, blockSize: 6, vocabSize: 5 });
    is(() => gpt.forward(null as never), /INVALID_ARGUMENT GPT: input must be a Tensor/, 'GPT null');
    const enc = new kiln.nn.TransformerEncoder({ nLayer: 1, nHead: 2, nEmbd: 8, maxLen: 6, vocabSize: 5, timestep: true });
    const tokens = kiln.fromTyped(Int32Array.from([1, 2, 3, 4]), [2, 2], { dtype: 'int32' });
    is(() => enc.forward(kiln.fromTyped(Int32Array.from([1, 2]), [2], { dtype: 'int32' })), /SHAPE_MISMATCH TransformerEncoder: input must be int32 \[B, T\]/, 'encoder rank 1');
    is(() => enc.forward(tokens, { t: [1, 2] as never }), /INVALID_ARGUMENT TransformerEncoder: t must be a Tensor/, 'encoder t');
    is(() => enc.forward(tokens, { cond: kiln.zeros([3, 8]) }), /SHAPE_MISMATCH TransformerEncoder: cond \[3, 8\]/, 'encoder cond');
    t.deepEqual(enc.forward(tokens, null as never).shape, [2, 2, 8], 'null options mean none');
    const vit = new kiln.nn.ViT({ imageSize: 4, patchSize: 2, channels: 1, numClasses: 2, nLayer: 1, nHead: 2, nEmbd: 8 });
    is(() => vit.forward(null as never), /INVALID_ARGUMENT ViT: images must be a Tensor/, 'ViT null');
    const s2s = new kiln.nn.Seq2Seq({ srcVocabSize: 5, tgtVocabSize: 5, nLayer: 1, nHead: 2, nEmbd: 8, maxLen: 3 });
    const mem = s2s.encode(tokens);
    is(() => s2s.decode(kiln.fromTyped(Int32Array.from([1, 2, 3, 4]), [1, 4], { dtype: 'int32' }), mem.narrow(0, 0, 1)), /SHAPE_MISMATCH Seq2Seq: target length 4 exceeds maxLen 3/, 'target too long');
    is(() => s2s.decode(null as never, mem), /INVALID_ARGUMENT Seq2Seq: target must be a Tensor/, 'decode null');
    // Masks must broadcast to the scores [B, H, Tq, Tk]; they never grow the output.
    const q = kiln.randn([1, 2, 3, 4]);
    is(() => kiln.nn.scaledDotProductAttention(q, q, q, { mask: kiln.zeros([2, 1, 1, 3]) }), /SHAPE_MISMATCH attention: mask \[2, 1, 1, 3\] does not broadcast/, 'mask batch 2 for B 1');
    is(() => kiln.nn.scaledDotProductAttention(q, q, q, { mask: kiln.zeros([1, 1, 1, 3, 3]) }), /SHAPE_MISMATCH attention: mask \[1, 1, 1, 3, 3\]/, 'rank-5 mask');
    is(() => kiln.nn.scaledDotProductAttention(q, q, q, { mask: [[0]] as never }), /INVALID_ARGUMENT attention: mask must be a Tensor/, 'mask not a tensor');
    t.deepEqual(kiln.nn.scaledDotProductAttention(q, q, q, { mask: kiln.zeros([3, 3]) }).shape, [1, 2, 3, 4], 'a [Tq, Tk] mask');
    // kiln.full takes a dtype or creation options.
    t.is(kiln.full([2], 3, { dtype: 'float64' }).dtype, 'float64');
    is(() => kiln.full([2], 3, 'float8' as never), /INVALID_ARGUMENT full: unknown dtype 'float8'/, 'full dtype');
  });
});
