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
