// `kiln decentralized plan`: schedule a 64-GPU GPT3-XL training job over one of the paper's network
// scenarios (or a custom network) and report the layout, its cost, the baselines and simulated
// iteration times; writes plan.json and the search's convergence curve (SVG) to a run folder.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagInt, flagNumber, flagString, MAX_SEED, parseVerb, prepareOutDir, UsageError, type Command } from '../../cli/args.js';
import { writeVegaLiteSvg } from '../../plot/vegalite.js';
import { NetworkSpecError } from './network.js';
import { loadNetwork, planLayout, type Plan } from './plan.js';

const HELP = `usage: kiln decentralized plan --scenario <1..5|file.json> [options]

Schedules data- and pipeline-parallel training of GPT3-XL over a heterogeneous network with the
evolutionary scheduler of "Decentralized Training of Foundation Models in Heterogeneous
Environments" (Yuan et al., arXiv 2206.01288), and compares it with random layouts, the same search
with the standard Kernighan-Lin gain, and Megatron-LM's default placement.

scenarios (64 GPUs):
  1  data centre on demand: 8 nodes x 8 GPUs, 100 Gbps inside a node, 25 Gbps across
  2  data centre spot: 8 x 4-GPU + 32 x 1-GPU nodes, 100 / 10 Gbps
  3  two data centres: 32 GPUs in Ohio, 32 in Virginia (11 ms, 1.12 Gbps between)
  4  regional: 16 GPUs in each of Virginia, Oregon, California, Ohio
  5  world-wide: 8 GPUs in each of Oregon, Virginia, Ohio, Tokyo, Seoul, London, Frankfurt, Ireland
  file.json  a custom network (2 to 1024 devices), either
       { "devices": [{ "region": "A", "count": 8, "tflops": 50 }, ...],
         "links": [{ "between": ["A", "B"], "delayMs": 40, "gbps": 1 }, ...],
         "intraRegion": { "delayMs": 5, "gbps": 2 }, "stages": 8 }
     or { "delayMs": [[...]], "gbps": [[...]], "tflops": 50, "stages": 8 }

options:
  --seed N         random seed (default 0); the same seed gives the same layout
  --trials N       offspring per search (default 4900, after a population of 100)
  --pp-weight W    weight of the pipeline cost in the total (default 2, as the authors' code)
  --out DIR        run folder (default runs/decentralized-<scenario>-<seed>)
  --json           print the plan as JSON instead of a summary
  -h, --help       this help`;

function downsample(curve: number[], points = 200): { candidates: number; cost: number }[] {
  const out: { candidates: number; cost: number }[] = [];
  const step = Math.max(1, Math.floor(curve.length / points));
  for (let i = 0; i < curve.length; i += step) out.push({ candidates: i + 1, cost: curve[i] });
  if (curve.length && out[out.length - 1].candidates !== curve.length) out.push({ candidates: curve.length, cost: curve[curve.length - 1] });
  return out;
}

/** The plan as written to plan.json and printed by --json: curves downsampled. */
export function planJson(plan: Plan) {
  const { search, baselines } = plan;
  return {
    ...plan,
    search: { ...search, convergence: downsample(search.convergence) },
    baselines: {
      ...baselines,
      random: { ...baselines.random, convergence: downsample(baselines.random.convergence) },
      standardKL: { ...baselines.standardKL, convergence: downsample(baselines.standardKL.convergence) },
    },
  };
}

async function writeConvergenceSvg(path: string, plan: Plan): Promise<void> {
  const values = [
    ...downsample(plan.search.convergence).map((p) => ({ ...p, method: "scheduler (paper's gain)" })),
    ...downsample(plan.baselines.standardKL.convergence).map((p) => ({ ...p, method: 'same search, standard KL gain' })),
    ...downsample(plan.baselines.random.convergence).map((p) => ({ ...p, method: 'best of random layouts' })),
  ];
  await writeVegaLiteSvg(path, {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${plan.network.name}: best cost found`,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'candidates', type: 'quantitative', title: 'candidates evaluated' },
      y: { field: 'cost', type: 'quantitative', title: `cost (s): DP + ${plan.ppWeight}·PP`, scale: { zero: false } },
      color: { field: 'method', type: 'nominal', title: null },
    },
  });
}

const f = (x: number, d = 2) => x.toFixed(d);

export function formatPlan(plan: Plan): string {
  const { cost, baselines: b, simulation: sim } = plan;
  const lines: string[] = [];
  lines.push(`${plan.network.name}: ${plan.network.devices} devices, ${plan.network.stages} pipeline stages × ${plan.network.replicas} data-parallel replicas`);
  lines.push(`workload ${plan.workload.name}: c_DP ${f(plan.workload.cDP / 1e9)} GB per stage, c_PP ${f(plan.workload.cPP / 1e9)} GB per macro-batch; cost = DP + ${plan.ppWeight}·PP`);
  lines.push('', 'layout (row = pipeline stage in order, column = data-parallel replica; device id and location):');
  plan.layout.forEach((row, s) => {
    const cells = row.map((d, r) => (plan.layoutRegions ? `${d}:${plan.layoutRegions[s][r]}` : String(d)));
    lines.push(`  stage ${s}: ${cells.join('  ')}`);
  });
  lines.push('', 'cost model (seconds):');
  const row = (name: string, c: { total: number; dp?: number; pp?: number }) =>
    `  ${name.padEnd(34)} ${f(c.total).padStart(8)}` + (c.dp !== undefined ? `   (DP ${f(c.dp)}, PP ${f(c.pp!)})` : '');
  lines.push(row("scheduler (paper's gain)", cost));
  lines.push(row('same search, standard KL gain', b.standardKL));
  lines.push(row(`best of ${b.random.samples} random layouts`, { total: b.random.best }));
  lines.push(row(`mean of ${b.random.samples} random layouts`, { total: b.random.mean }));
  lines.push(row('Megatron-like default placement', b.megatron));
  lines.push(`  scheduler / random mean = ${f(cost.total / b.random.mean, 3)}; scheduler / standard KL = ${f(cost.total / b.standardKL.total, 3)}`);
  lines.push('', 'simulated GPipe iteration (seconds; pipeline = last backward done, then gradient sync):');
  lines.push(`  ${'scheduled layout'.padEnd(34)} ${f(sim.scheduled.iteration).padStart(8)}   (pipeline ${f(sim.scheduled.pipelineDone)})`);
  lines.push(`  ${'Megatron-like placement'.padEnd(34)} ${f(sim.megatron.iteration).padStart(8)}   (pipeline ${f(sim.megatron.pipelineDone)})`);
  lines.push(`  ${`random layouts (mean of ${sim.random.samples})`.padEnd(34)} ${f(sim.random.meanIteration).padStart(8)}   (pipeline ${f(sim.random.meanPipelineDone)})`);
  lines.push(`  compute alone: ${f(sim.scheduled.computePerStage)} s per stage per iteration`);
  lines.push('', `searched ${plan.search.evaluations} + ${plan.baselines.standardKL.evaluations} candidates in ${f(plan.seconds, 1)} s`);
  return lines.join('\n');
}

export const command: Command = {
  name: 'decentralized',
  summary: 'schedule training over heterogeneous networks (arXiv 2206.01288)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, { command: 'decentralized', verb: 'plan', help: HELP, options: ['scenario', 'seed', 'trials', 'pp-weight', 'out', 'json'] });
    if (typeof flags === 'number') return flags;
    const scenario = flagString(flags, 'scenario');
    if (!scenario) throw new UsageError('decentralized plan: --scenario <1..5|file.json> is required');
    const seed = flagInt(flags, 'seed', 0, 0, MAX_SEED)!;
    const trials = flagNumber(flags, 'trials', 4900)!;
    if (!Number.isInteger(trials) || trials < 0) throw new UsageError(`--trials must be a non-negative integer, got ${trials}`);
    const ppWeight = flagNumber(flags, 'pp-weight', 2)!;
    if (!(ppWeight >= 0)) throw new UsageError(`--pp-weight must be >= 0, got ${ppWeight}`);

    let net;
    try {
      net = loadNetwork(scenario);
    } catch (e) {
      if (e instanceof NetworkSpecError) throw new UsageError(`decentralized plan: invalid network ${scenario}: ${e.message}`);
      throw e;
    }
    const tag = /^[1-5]$/.test(scenario) ? scenario : scenario.replace(/^.*[\\/]/, '').replace(/\.json$/i, '');
    const out = flagString(flags, 'out') ?? join('runs', `decentralized-${tag}-${seed}`);
    prepareOutDir(out);
    const plan = planLayout(net, { seed, trials, ppWeight, log: (line) => console.error(`[decentralized] ${line}`) });
    const json = planJson(plan);
    writeFileSync(join(out, 'plan.json'), JSON.stringify(json, null, 2) + '\n');
    await writeConvergenceSvg(join(out, 'convergence.svg'), plan);
    if (flags.json) console.log(JSON.stringify(json, null, 2));
    else console.log(`${formatPlan(plan)}\nwrote ${join(out, 'plan.json')} and ${join(out, 'convergence.svg')}`);
    return 0;
  },
};
