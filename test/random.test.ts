// Philox 4x32-10 random numbers: reproducibility, the stream layout, moments, and the first values
// cross-checked against an independent TypeScript Philox written here from the paper's definition.
import test from 'ava';
import * as kiln from '../src/index.js';

// ---------------------------------------------------------------- an independent Philox 4x32-10

const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** philox4x32_10(counter, key) with BigInt products (slow and obviously right). */
function philox(ctr: [number, number, number, number], key: [number, number]): number[] {
  let [c0, c1, c2, c3] = ctr;
  let [k0, k1] = key;
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * BigInt(c0), p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n), lo0 = Number(p0 & 0xffffffffn);
    const hi1 = Number(p1 >> 32n), lo1 = Number(p1 & 0xffffffffn);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** Word w of the kiln stream for a seed: lane w % 4 of the block for counter w / 4 (kernels/cpu/kernels.h). */
function word(seed: bigint, w: number): number {
  const block = BigInt(Math.floor(w / 4));
  const out = philox([Number(block & 0xffffffffn), Number(block >> 32n), 0, 0], [Number(seed & 0xffffffffn), Number(seed >> 32n)]);
  return out[w % 4];
}
const unit = (x: number) => (x >>> 8) * 2 ** -24;
const unitOpen0 = (x: number) => ((x >>> 8) + 1) * 2 ** -24;

test('the TypeScript Philox matches the Random123 known-answer vectors', (t) => {
  // From Random123's kat_vectors: philox4x32 10 rounds.
  t.deepEqual(philox([0, 0, 0, 0], [0, 0]).map((v) => v.toString(16).padStart(8, '0')), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  t.deepEqual(
    philox([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]).map((v) => v.toString(16).padStart(8, '0')),
    ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd'],
  );
  t.deepEqual(
    philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]).map((v) => v.toString(16).padStart(8, '0')),
    ['d16cfe09', '94fdcceb', '5001e420', '24126ea1'],
  );
});

test('kiln.rand gives exactly the reference stream values (float64 and float32)', (t) => {
  for (const seed of [0n, 1n, 42n, 0x1234567890abcdefn]) {
    kiln.manualSeed(seed);
    const got = kiln.tidy(() => Array.from(kiln.rand([11], { dtype: 'float64' }).dataSync()));
    t.deepEqual(got, Array.from({ length: 11 }, (_, i) => unit(word(seed, i))), `seed ${seed}`);
    // The next draw starts on the next Philox block: words 12.. (11 rounded up to a multiple of 4).
    const next = kiln.tidy(() => Array.from(kiln.rand([3]).dataSync()));
    t.deepEqual(next, [12, 13, 14].map((w) => Math.fround(unit(word(seed, w)))), `seed ${seed}: second draw`);
  }
  kiln.manualSeed(5);
  const scaled = kiln.tidy(() => Array.from(kiln.rand([4], { dtype: 'float64', low: -2, high: 3 }).dataSync()));
  t.deepEqual(scaled, [0, 1, 2, 3].map((w) => -2 + 5 * unit(word(5n, w))));
});

test('kiln.randn is Box-Muller on the reference stream', (t) => {
  const seed = 2024n;
  kiln.manualSeed(seed);
  const n = 7; // odd: uses 8 words
  const got64 = kiln.tidy(() => Array.from(kiln.randn([n], { dtype: 'float64' }).dataSync()));
  const want: number[] = [];
  for (let j = 0; j < 4; j++) {
    const r = Math.sqrt(-2 * Math.log(unitOpen0(word(seed, 2 * j))));
    const a = 2 * Math.PI * unit(word(seed, 2 * j + 1));
    want.push(r * Math.cos(a), r * Math.sin(a));
  }
  got64.forEach((v, i) => t.true(Math.abs(v - want[i]) < 1e-12, `float64 value ${i}: ${v} vs ${want[i]}`));
  kiln.manualSeed(seed);
  const got32 = kiln.tidy(() => Array.from(kiln.randn([n], { mean: 1, std: 2 }).dataSync()));
  got32.forEach((v, i) => t.true(Math.abs(v - (1 + 2 * want[i])) < 2e-5 * (1 + Math.abs(v)), `float32 value ${i}: ${v} vs ${1 + 2 * want[i]}`));
});

test('kiln.randint is low + word % (high - low) on the reference stream', (t) => {
  kiln.manualSeed(99);
  const got = kiln.tidy(() => Array.from(kiln.randint(-3, 10, [9]).dataSync()));
  t.deepEqual(got, Array.from({ length: 9 }, (_, i) => -3 + (word(99n, i) % 13)));
});

test('manualSeed reproduces, different seeds differ, and get/setRngState resumes the stream', (t) => {
  const draw = () => kiln.tidy(() => [...kiln.rand([64]).dataSync(), ...kiln.randn([33]).dataSync(), ...kiln.randint(0, 1000, [16]).dataSync()]);
  kiln.manualSeed(123);
  const a = draw();
  kiln.manualSeed(123);
  t.deepEqual(draw(), a, 'same seed, same values');
  kiln.manualSeed(124);
  const b = draw();
  t.true(b.filter((v, i) => v !== a[i]).length > 100, 'another seed gives other values');
  kiln.manualSeed(7);
  kiln.tidy(() => kiln.rand([5]));
  const state = kiln.getRngState();
  const c = draw();
  kiln.setRngState(state);
  t.deepEqual(draw(), c, 'restoring the state replays the stream');
  t.notDeepEqual(draw(), c, 'and the stream moves on');
});

test('uniform and normal moments; randint covers its range uniformly', (t) => {
  kiln.manualSeed(31337);
  const n = 200_000;
  kiln.tidy(() => {
    const u = Array.from(kiln.rand([n]).dataSync());
    const mu = u.reduce((s, v) => s + v, 0) / n;
    const vu = u.reduce((s, v) => s + (v - mu) ** 2, 0) / n;
    t.true(Math.abs(mu - 0.5) < 5 * Math.sqrt(1 / 12 / n), `uniform mean ${mu}`);
    t.true(Math.abs(vu - 1 / 12) < 0.002, `uniform variance ${vu}`);
    t.true(u.every((v) => v >= 0 && v < 1), 'uniform values in [0, 1)');

    const z = Array.from(kiln.randn([n], { dtype: 'float64' }).dataSync());
    const mz = z.reduce((s, v) => s + v, 0) / n;
    const m2 = z.reduce((s, v) => s + (v - mz) ** 2, 0) / n;
    const m3 = z.reduce((s, v) => s + (v - mz) ** 3, 0) / n;
    const m4 = z.reduce((s, v) => s + (v - mz) ** 4, 0) / n;
    t.true(Math.abs(mz) < 5 / Math.sqrt(n), `normal mean ${mz}`);
    t.true(Math.abs(m2 - 1) < 0.015, `normal variance ${m2}`);
    t.true(Math.abs(m3) < 0.03, `normal skewness ${m3}`);
    t.true(Math.abs(m4 / (m2 * m2) - 3) < 0.06, `normal kurtosis ${m4 / (m2 * m2)}`);
    const within1 = z.filter((v) => Math.abs(v) < 1).length / n;
    t.true(Math.abs(within1 - 0.6827) < 0.005, `P(|z| < 1) = ${within1}`);

    const s = Array.from(kiln.randn([50_000], { mean: 3, std: 0.5 }).dataSync());
    const ms = s.reduce((p, v) => p + v, 0) / s.length;
    const sd = Math.sqrt(s.reduce((p, v) => p + (v - ms) ** 2, 0) / s.length);
    t.true(Math.abs(ms - 3) < 0.01 && Math.abs(sd - 0.5) < 0.01, `randn mean/std ${ms}/${sd}`);

    const k = Array.from(kiln.randint(-5, 5, [100_000]).dataSync());
    t.true(k.every((v) => v >= -5 && v < 5), 'randint in [low, high)');
    const counts = new Array(10).fill(0);
    k.forEach((v) => counts[v + 5]++);
    const chi2 = counts.reduce((p, c) => p + (c - 10_000) ** 2 / 10_000, 0);
    t.true(chi2 < 30, `chi-square over 10 bins (9 dof) = ${chi2}`); // p < 0.0005 to exceed
  });
});
