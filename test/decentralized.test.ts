// Tests for the `decentralized` recipe (arXiv 2206.01288): the combinatorial solvers against brute
// force, the cost model against hand-computed values, the search against exhaustive enumeration,
// reproducibility, the simulation, JSON validation and the CLI.
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { solveAssignment, bottleneckMatching, bottleneckMatchingByAssignment, heldKarpPath } from '../src/recipes/decentralized/matching.js';
import { costModel, dataParallelCost, groupsOf, layoutCost, partitionCost, type Workload, type Layout } from '../src/recipes/decentralized/cost.js';
import { networkFromPairs, networkFromSpec, NetworkSpecError, GBPS, MAX_DEVICES, type Network } from '../src/recipes/decentralized/network.js';
import { KilnError } from '../src/errors.js';
import { geneticSearch, randomBaseline } from '../src/recipes/decentralized/search.js';
import { simulateIteration, megatronLayout } from '../src/recipes/decentralized/simulate.js';
import { planLayout, loadNetwork } from '../src/recipes/decentralized/plan.js';
import { worldWide, SCENARIOS } from '../src/recipes/decentralized/scenarios.js';
import { command } from '../src/recipes/decentralized/cli.js';
import { UsageError } from '../src/cli/args.js';
import { Rng } from '../src/recipes/decentralized/rng.js';

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

function randomMatrix(rng: Rng, n: number, distinct: number): Float64Array {
  // Few distinct values make ties, the hard case for threshold searches.
  return Float64Array.from({ length: n * n }, () => 1 + rng.int(distinct));
}

test('assignment solver matches brute force on random matrices', (t) => {
  const rng = new Rng(1);
  for (let trial = 0; trial < 60; trial++) {
    const n = 1 + (trial % 6);
    const c = Float64Array.from({ length: n * n }, () => rng.next() * 10);
    let best = Infinity;
    for (const p of permutations(n)) best = Math.min(best, p.reduce((s, j, i) => s + c[i * n + j], 0));
    const a = solveAssignment(c, n);
    t.true(Math.abs(a.cost - best) < 1e-9, `n=${n}`);
    t.deepEqual([...a.match].sort(), Array.from({ length: n }, (_, i) => i));
  }
});

test('bottleneck matching (both formulations) matches brute force, and its matching achieves it', (t) => {
  const rng = new Rng(2);
  for (let trial = 0; trial < 80; trial++) {
    const n = 1 + (trial % 7);
    const w = trial % 2 ? randomMatrix(rng, n, 5) : Float64Array.from({ length: n * n }, () => rng.next());
    let best = Infinity;
    for (const p of permutations(n)) best = Math.min(best, Math.max(...p.map((j, i) => w[i * n + j])));
    for (const bm of [bottleneckMatching(w, n), bottleneckMatchingByAssignment(w, n)]) {
      t.is(bm.value, best, `n=${n}`);
      t.is(new Set(bm.match).size, n);
      t.is(Math.max(...[...bm.match].map((j, i) => w[i * n + j])), best);
    }
  }
});

test('Held–Karp open path matches brute force over all orders', (t) => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + (trial % 7);
    const c = Float64Array.from({ length: n * n }, () => rng.next());
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) c[i * n + j] = c[j * n + i]; // symmetric, like the PP costs
    let best = Infinity;
    for (const p of permutations(n)) best = Math.min(best, p.slice(1).reduce((s, v, k) => s + c[p[k] * n + v], 0));
    const hk = heldKarpPath(c, n);
    t.true(Math.abs(hk.cost - best) < 1e-12, `n=${n}`);
    t.is(new Set(hk.path).size, n);
    t.true(Math.abs(hk.path.slice(1).reduce((s, v, k) => s + c[hk.path[k] * n + v], 0) - hk.cost) < 1e-12);
  }
});

// A 4-device line: delays 10/20/30 ms and bandwidths 1/2/4 Gbps picked so every term is easy by hand.
function tinyNetwork(stages: number): Network {
  const delayMs = [[0, 10, 20, 30], [10, 0, 10, 20], [20, 10, 0, 10], [30, 20, 10, 0]];
  const gbps = [[0, 1, 2, 4], [1, 0, 2, 1], [2, 2, 0, 1], [4, 1, 1, 0]];
  return networkFromPairs('tiny', 4, (i, j) => ({ delayMs: delayMs[i][j], gbps: gbps[i][j] }), { stages, tflops: 100 });
}
const tinyWorkload: Workload = { name: 'tiny', cDP: 1e8, cPP: 5e7, stageFlops: 6e12, microBatches: 1 };

test('cost model: DP, PP and total agree with hand-computed values', (t) => {
  const m = costModel(tinyNetwork(2), tinyWorkload, 2); // 2 stages × 2 replicas
  const close = (a: number, b: number, msg: string) => t.true(Math.abs(a - b) < 1e-12, `${msg}: ${a} vs ${b}`);
  // DP link 0–1: 2(0.010 + 1e8 / (2 · 1.25e8)) = 2(0.010 + 0.4) = 0.82; link 2–3 likewise 0.82.
  close(m.dpLink[0 * 4 + 1], 0.82, 'dp link 0-1');
  // Link 0-3: 2(0.030 + 1e8 / (2 · 5e8)) = 2(0.03 + 0.1) = 0.26.
  close(m.dpLink[0 * 4 + 3], 0.26, 'dp link 0-3');
  // PP link 0-2: 0.020 + 5e7 / 2.5e8 = 0.22; 1-3: 0.020 + 5e7 / 1.25e8 = 0.42.
  close(m.ppLink[0 * 4 + 2], 0.22, 'pp link 0-2');
  close(m.ppLink[1 * 4 + 3], 0.42, 'pp link 1-3');
  close(dataParallelCost(m, [[0, 1], [2, 3]]), 0.82, 'dp cost');
  // Groups {0,1} and {2,3}: matchings 0-2,1-3 → max(0.22, 0.42) = 0.42; 0-3,1-2 → max(0.03+0.1, 0.01+0.2) = 0.21.
  const c = partitionCost(m, [[0, 1], [2, 3]], true);
  close(c.dp, 0.82, 'partition dp');
  close(c.pp, 0.21, 'partition pp');
  close(c.total, 0.82 + 2 * 0.21, 'partition total');
  // The layout it returns realises that cost exactly.
  close(layoutCost(m, c.layout).total, c.total, 'layout of the partition');
  // A fixed layout pays for its own pairing: 0→2 and 1→3.
  close(layoutCost(m, [[0, 1], [2, 3]]).pp, 0.42, 'fixed layout pp');
  // ppWeight 1 is the paper's printed formula.
  close(partitionCost(costModel(tinyNetwork(2), tinyWorkload, 1), [[0, 1], [2, 3]]).total, 0.82 + 0.21, 'ppWeight 1');
});

/** All balanced partitions of 0..n-1 into groups of size r (groups unordered). */
function allPartitions(items: number[], r: number): number[][][] {
  if (items.length === 0) return [[]];
  const [first, ...rest] = items;
  const out: number[][][] = [];
  const choose = (from: number[], k: number): number[][] => {
    if (k === 0) return [[]];
    if (from.length < k) return [];
    const [h, ...tl] = from;
    return [...choose(tl, k - 1).map((c) => [h, ...c]), ...choose(tl, k)];
  };
  for (const mates of choose(rest, r - 1)) {
    const left = rest.filter((x) => !mates.includes(x));
    for (const p of allPartitions(left, r)) out.push([[first, ...mates], ...p]);
  }
  return out;
}

function randomNetwork(rng: Rng, n: number, stages: number): Network {
  const d = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const b = Array.from({ length: n }, () => new Array<number>(n).fill(1));
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    d[i][j] = d[j][i] = 1 + rng.int(200);
    b[i][j] = b[j][i] = 0.2 + rng.next() * 5;
  }
  return networkFromPairs('random', n, (i, j) => ({ delayMs: d[i][j], gbps: b[i][j] }), { stages });
}

test('partition cost equals the best of all 8! layouts (matching + Held–Karp are exact)', (t) => {
  const m = costModel(randomNetwork(new Rng(4), 8, 4), undefined, 2);
  let bestLayout = Infinity;
  for (const p of permutations(8)) {
    const layout: Layout = [0, 1, 2, 3].map((s) => [p[2 * s], p[2 * s + 1]]);
    bestLayout = Math.min(bestLayout, layoutCost(m, layout).total);
  }
  let bestPartition = Infinity;
  for (const groups of allPartitions([0, 1, 2, 3, 4, 5, 6, 7], 2)) bestPartition = Math.min(bestPartition, partitionCost(m, groups).total);
  t.true(Math.abs(bestLayout - bestPartition) < 1e-9, `${bestLayout} vs ${bestPartition}`);
});

test('on 8-device graphs the search finds the optimum that exhaustive enumeration finds', (t) => {
  const rng = new Rng(5);
  for (let g = 0; g < 6; g++) {
    const stages = g % 2 ? 2 : 4; // 4 × 2 (105 partitions) and 2 × 4 (35 partitions)
    const m = costModel(randomNetwork(rng, 8, stages));
    let optimum = Infinity;
    for (const groups of allPartitions([0, 1, 2, 3, 4, 5, 6, 7], 8 / stages)) optimum = Math.min(optimum, partitionCost(m, groups).total);
    for (const gain of ['paper', 'standard'] as const) {
      const r = geneticSearch(m, { gain, seed: g, population: 10, trials: 300 });
      t.true(Math.abs(r.total - optimum) < 1e-9, `graph ${g} ${gain}: found ${r.total}, optimum ${optimum}`);
    }
  }
});

test('world-wide: the scheduler beats a third of the random mean and the standard-KL search', (t) => {
  const m = costModel(worldWide());
  const ours = geneticSearch(m, { gain: 'paper', seed: 7, trials: 1000 });
  const std = geneticSearch(m, { gain: 'standard', seed: 7, trials: 1000 });
  const random = randomBaseline(m, 2000, 7);
  t.true(ours.total <= random.mean / 3, `${ours.total} vs random mean ${random.mean}`);
  t.true(ours.total < std.total, `${ours.total} vs standard KL ${std.total}`);
  t.true(ours.convergence.every((c, i) => i === 0 || c <= ours.convergence[i - 1]), 'convergence is monotone');
});

test('the same seed gives the same layout', (t) => {
  const net = SCENARIOS['4']();
  const opts = { seed: 11, trials: 150, population: 20, randomSamples: 100, simulatedRandom: 2 };
  const a = planLayout(net, opts);
  const b = planLayout(net, opts);
  t.deepEqual(a.layout, b.layout);
  t.is(a.cost.total, b.cost.total);
  t.deepEqual(a.search.convergence, b.search.convergence);
  t.is(a.baselines.random.mean, b.baselines.random.mean);
  // Every device appears exactly once in the layout.
  t.deepEqual(a.layout.flat().sort((x, y) => x - y), Array.from({ length: 64 }, (_, i) => i));
  const rngA = new Rng(99);
  const rngB = new Rng(99);
  t.deepEqual(Array.from({ length: 5 }, () => rngA.nextU32()), Array.from({ length: 5 }, () => rngB.nextU32()));
});

test('simulation: a two-stage pipeline matches the hand-computed GPipe timeline', (t) => {
  // Devices 0 and 2 of the tiny network, one replica, one micro-batch, 100 TFLOP/s.
  const net = networkFromPairs('pair', 2, () => ({ delayMs: 20, gbps: 2 }), { stages: 2, tflops: 100 });
  const m = costModel(net, tinyWorkload);
  // forward 2e12 / 1e14 = 0.02 s, backward 0.04 s, transfer 0.02 + 5e7 / 2.5e8 = 0.22 s each way.
  const sim = simulateIteration(m, [[0], [1]]);
  const expected = 0.02 + 0.22 + 0.02 + 0.04 + 0.22 + 0.04;
  t.true(Math.abs(sim.iteration - expected) < 1e-12, `${sim.iteration} vs ${expected}`);
  t.true(Math.abs(sim.pipelineDone - expected) < 1e-12);
  // With two replicas per stage the gradient sync adds the DP cost after the pipeline.
  const m4 = costModel(tinyNetwork(2), tinyWorkload);
  const s4 = simulateIteration(m4, [[0, 1], [2, 3]]);
  t.true(s4.iteration > s4.pipelineDone);
  t.true(Math.abs(s4.iteration - s4.pipelineDone - 0.82) < 0.82, 'sync at most the DP cost after the last backward');
  t.deepEqual(megatronLayout(2, 3), [[0, 1, 2], [3, 4, 5]]);
});

test('simulation: the scheduled world-wide layout beats Megatron-like and random placement', (t) => {
  const plan = planLayout(worldWide(), { seed: 1, trials: 400, randomSamples: 200, simulatedRandom: 3 });
  t.true(plan.simulation.scheduled.iteration < plan.simulation.megatron.iteration);
  t.true(plan.simulation.scheduled.iteration < plan.simulation.random.meanIteration);
  t.true(plan.simulation.scheduled.iteration >= plan.simulation.scheduled.computePerStage);
});

test('custom networks from JSON: both shapes build the same matrices', (t) => {
  const regions = networkFromSpec({
    devices: [{ region: 'A', count: 2 }, { region: 'B', count: 2, tflops: 80 }],
    links: [{ between: ['A', 'B'], delayMs: 40, gbps: 1 }],
    intraRegion: { delayMs: 5, gbps: 2 },
    stages: 2,
  });
  t.is(regions.n, 4);
  t.deepEqual(regions.regions, ['A', 'A', 'B', 'B']);
  t.is(regions.delay[0 * 4 + 2], 0.04);
  t.is(regions.bandwidth[0 * 4 + 1], 2 * GBPS);
  t.is(regions.flops[3], 80e12);
  const matrix = networkFromSpec({
    delayMs: [[0, 5, 40, 40], [5, 0, 40, 40], [40, 40, 0, 5], [40, 40, 5, 0]],
    gbps: [[0, 2, 1, 1], [2, 0, 1, 1], [1, 1, 0, 2], [1, 1, 2, 0]],
    stages: 2,
  });
  t.deepEqual([...matrix.delay], [...regions.delay]);
  t.deepEqual([...matrix.bandwidth], [...regions.bandwidth]);
});

test('custom networks from JSON: invalid input is refused with errors naming the field', (t) => {
  const bad: [unknown, string][] = [
    [[1, 2], 'network'],
    [{}, 'network'],
    [{ devices: [] }, 'devices'],
    [{ devices: [{ count: 2 }] }, 'devices[0].region'],
    [{ devices: [{ region: 'A', count: 0 }] }, 'devices[0].count'],
    [{ devices: [{ region: 'A', count: 2 }, { region: 'B', count: 2 }], intraRegion: { delayMs: 1, gbps: 1 } }, 'links'],
    [{ devices: [{ region: 'A', count: 2 }], links: [{ between: ['A', 'Z'], delayMs: 1, gbps: 1 }] }, 'links[0].between'],
    [{ devices: [{ region: 'A', count: 2 }], links: [{ between: ['A', 'A'], delayMs: 1, gbps: -1 }] }, 'links[0].gbps'],
    [{ devices: [{ region: 'A', count: 2 }] }, 'intraRegion'],
    [{ devices: [{ region: 'A', count: 3 }], intraRegion: { delayMs: 1, gbps: 1 }, stages: 2 }, 'stages'],
    [{ delayMs: [[0, 1], [1, 0]] }, 'gbps'],
    [{ devices: [{ region: 'A', count: 16 }], intraRegion: { delayMs: 1, gbps: 1 }, stages: 16 }, 'stages'],
    [{ delayMs: [[0, 1], [2, 0]], gbps: [[0, 1], [1, 0]] }, 'delayMs[0][1]'],
    [{ delayMs: [[0, 1], [1, 0]], gbps: [[0, 1], [1]] }, 'gbps[1]'],
    [{ delayMs: [[0, 1], [1, 0]], gbps: [[0, 0], [0, 0]] }, 'gbps[0][1]'],
    [{ delayMs: [[0, 'x'], ['x', 0]], gbps: [[0, 1], [1, 0]] }, 'delayMs[0][1]'],
    [{ delayMs: [[0, 1], [1, 0]], gbps: [[0, 1], [1, 0]], tflops: [1] }, 'tflops'],
  ];
  for (const [spec, field] of bad) {
    const e = t.throws(() => networkFromSpec(spec), { instanceOf: NetworkSpecError }, JSON.stringify(spec));
    t.is(e?.field, field, JSON.stringify(spec));
    t.true(e!.message.startsWith(field), e!.message);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kiln-dz-'));
  writeFileSync(join(dir, 'broken.json'), '{ "devices": [');
  t.throws(() => loadNetwork(join(dir, 'broken.json')), { instanceOf: NetworkSpecError, message: /not valid JSON/ });
  t.throws(() => loadNetwork(join(dir, 'missing.json')), { instanceOf: NetworkSpecError, message: /scenario/ });
});

test('cli: plan on a custom network writes plan.json and the convergence SVG', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-dz-'));
  const spec = join(dir, 'net.json');
  writeFileSync(spec, JSON.stringify({
    devices: [{ region: 'A', count: 4 }, { region: 'B', count: 4 }],
    links: [{ between: ['A', 'B'], delayMs: 40, gbps: 1 }],
    intraRegion: { delayMs: 5, gbps: 2 },
    stages: 4,
  }));
  const out = join(dir, 'run');
  const log = console.log;
  const err = console.error;
  let printed = '';
  console.log = (s: string) => { printed += s; };
  console.error = () => {};
  try {
    t.is(await command.run(['plan', '--scenario', spec, '--seed', '3', '--trials', '50', '--out', out, '--json']), 0);
  } finally {
    console.log = log;
    console.error = err;
  }
  const plan = JSON.parse(printed);
  t.is(plan.network.devices, 8);
  t.is(plan.layout.length, 4);
  t.deepEqual(JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')).layout, plan.layout);
  t.true(readFileSync(join(out, 'convergence.svg'), 'utf8').startsWith('<svg'));
  t.true(existsSync(join(out, 'convergence.vl.json')));
  await t.throwsAsync(command.run(['plan']), { message: /--scenario/ });
  await t.throwsAsync(command.run(['plan', '--scenario', '5', '--seed', 'x']), { message: /--seed/ });
  await t.throwsAsync(command.run(['launch', '--scenario', '5']), { message: /unknown verb/ });
  await t.throwsAsync(command.run(['plan', '--scenario', join(dir, 'nope.json')]), { instanceOf: UsageError, message: /invalid network/ });
});

test('planLayout: options that would give NaN costs, a different search or an aliased seed are KilnErrors', (t) => {
  const net = networkFromPairs('tiny', 4, () => ({ delayMs: 1, gbps: 1 }), { stages: 2 });
  const bad = (o: Parameters<typeof planLayout>[1], message: RegExp) => t.throws(() => planLayout(net, o), { instanceOf: KilnError, message }, JSON.stringify(o));
  bad({ trials: -1 }, /trials must be an integer >= 0, got -1/);
  bad({ trials: 1.5 }, /trials must be an integer >= 0, got 1.5/);
  bad({ population: NaN }, /population must be an integer >= 2, got NaN/);
  bad({ population: 0 }, /population must be an integer >= 2/);
  bad({ randomSamples: 0 }, /randomSamples must be a positive integer/);
  bad({ simulatedRandom: 0 }, /simulatedRandom must be a positive integer/);
  bad({ ppWeight: -1 }, /ppWeight must be a finite number >= 0/);
  bad({ ppWeight: NaN }, /ppWeight must be a finite number >= 0/);
  bad({ seed: -1 }, /seed must be an integer in \[0, 2\^32\)/);
  bad({ seed: NaN }, /seed must be an integer in \[0, 2\^32\)/);
  t.true(Number.isFinite(planLayout(net, { trials: 0, population: 2, randomSamples: 1, simulatedRandom: 1, ppWeight: 0, seed: 2 ** 32 - 1 }).cost.total));
});

test('custom networks past MAX_DEVICES are refused before their n^2 link matrices are built; the CLI refuses aliasing seeds', async (t) => {
  const spec = (count: number) => ({ devices: [{ region: 'A', count }], intraRegion: { delayMs: 1, gbps: 1 }, stages: 2 });
  t.throws(() => networkFromSpec(spec(100_000)), { instanceOf: NetworkSpecError, message: /devices\[0\]\.count: brings the total past the 1024 devices/ });
  t.throws(() => networkFromSpec({ devices: [{ region: 'A', count: 1000 }, { region: 'A', count: 26 }], intraRegion: { delayMs: 1, gbps: 1 }, stages: 2 }),
    { instanceOf: NetworkSpecError, message: /devices\[1\]\.count/ });
  t.is(networkFromSpec(spec(MAX_DEVICES)).n, MAX_DEVICES);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-dz-'));
  writeFileSync(join(dir, 'big.json'), JSON.stringify(spec(100_000)));
  await t.throwsAsync(command.run(['plan', '--scenario', join(dir, 'big.json'), '--trials', '0']), { instanceOf: UsageError, message: /invalid network .*1024 devices/ });
  await t.throwsAsync(command.run(['plan', '--scenario', '1', '--seed', '4294967296']), { instanceOf: UsageError, message: /--seed must be an integer in \[0, 4294967295\]/ });
  await t.throwsAsync(command.run(['plan', '--scenario', '1', '--trials=']), { instanceOf: UsageError, message: /--trials needs a value/ });
});
