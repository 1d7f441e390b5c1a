// `kiln calibrated-ensembles run`: train standard and robust MLPs on a controlled spurious-feature
// shift, calibrate each on ID validation data, ensemble, and report ID/OOD accuracy and ECE of every
// system over seeds; writes results.json, a table and a reliability diagram (SVG) to a run folder.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagInt, flagNumber, flagString, parseVerb, prepareOutDir, UsageError, type Command } from '../../cli/args.js';
import { calibrationReport, MAX_BINS } from './calibration.js';
import { DEFAULT_EXPERIMENT, ROBUST_MEMBERS, runExperiment, type ExperimentConfig, type ExperimentResult, type RobustMember, type SystemName } from './experiment.js';
import { writeReliabilityDiagram } from './reliability.js';
import { SHIFT_SPLITS } from './shift.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln calibrated-ensembles run [options]

ID-calibrated ensembles under distribution shift (Kumar et al., arXiv 2207.08977). On a synthetic
shift (label y = ±1 or K classes; a nonlinear core feature, ±mu on the label's own dimension with
probability rho; a spurious feature that agrees with y with probability --agreement in distribution,
independently of y or against it OOD; nuisance dimensions) it trains a standard MLP on all features
and a robust member without the spurious features (by default a linear probe on frozen random ReLU
features: the paper's complementary pair, better core features vs no shortcut), fits one
temperature per member on ID validation data only (minimum NLL), averages the calibrated
probabilities, and reports accuracy and ECE (${D.bins} equal-width and equal-mass bins) of each member,
the vanilla ensemble and the calibrated ensemble on ID, OOD-independent and OOD-anticorrelated test
sets, mean ± std over seeds; plus a stress test with the standard model's logits scaled x${D.stressScale}.

options:
  --seeds N        number of seeds (default ${D.seeds})
  --seed S         first seed (default ${D.seed0})
  --classes K      number of classes (default ${D.shift.classes}; 2 is the y = ±1 setting)
  --rho P          probability the core feature is informative (default ${D.shift.rho})
  --agreement P    ID probability that the spurious feature points to y (default ${D.shift.spuriousAgreement})
  --core SHAPE     signed (nonlinear, default) or linear core feature (default ${D.shift.coreShape})
  --robust KIND    linear-probe (frozen random first layer, readout trained) or mlp (default ${D.robust})
  --steps N        training steps per member (default ${D.train.steps})
  --n-train N      training examples (default ${D.nTrain}); --n-val N (default ${D.nVal}); --n-test N per split (default ${D.nTest})
  --bins B         ECE bins (default ${D.bins})
  --out DIR        run folder (default runs/calibrated-ensembles-<date>)
  --json           print the results as JSON instead of a table
  -h, --help       this help`;

const pct = (s: { mean: number; std: number }) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
const TABLE_SYSTEMS: SystemName[] = ['standard', 'robust', 'vanilla ensemble', 'calibrated ensemble', 'vanilla ensemble, standard x5', 'calibrated ensemble, standard x5'];

export function formatResult(r: ExperimentResult): string {
  const lines: string[] = [];
  const c = r.config;
  lines.push(`calibrated ensembles: ${c.seeds} seeds, ${c.shift.classes} classes, ${c.shift.coreShape} core (rho ${c.shift.rho}, mean ${c.shift.coreMean}), ` +
    `ID spurious agreement ${c.shift.spuriousAgreement}, ${c.shift.nuisanceDims} nuisance dims; robust member: ${c.robust}; ` +
    `${c.nTrain} train / ${c.nVal} ID-validation / ${c.nTest} test rows per split`);
  lines.push(`temperatures (ID validation): standard ${r.temperatures.standard.mean.toFixed(2)} ± ${r.temperatures.standard.std.toFixed(2)}, ` +
    `robust ${r.temperatures.robust.mean.toFixed(2)} ± ${r.temperatures.robust.std.toFixed(2)}, standard x${c.stressScale} ${r.temperatures.standardX5.mean.toFixed(2)} ± ${r.temperatures.standardX5.std.toFixed(2)}`);
  lines.push(`accuracy and ECE in % (ECE: ${c.bins} equal-width bins; equal-mass in results.json), mean ± std over seeds`, '');
  const head = ['system'.padEnd(34), ...SHIFT_SPLITS.flatMap((s) => [`${s} acc`.padStart(26), 'ECE'.padStart(12)])].join('');
  lines.push(head);
  for (const s of TABLE_SYSTEMS) {
    const row = [s.padEnd(34)];
    for (const split of SHIFT_SPLITS) {
      const m = r.summary[split][s];
      row.push(pct(m.accuracy).padStart(26), pct(m.eceEqualWidth).padStart(12));
    }
    lines.push(row.join(''));
  }
  lines.push('', 'acceptance (per-seed paired differences in accuracy points, mean ± std):');
  for (const a of r.acceptance)
    lines.push(`  [${a.pass ? 'pass' : 'FAIL'}] ${a.name}: ${a.difference.mean.toFixed(2)} ± ${a.difference.std.toFixed(2)}   (${a.rule})`);
  lines.push(`\nfinished in ${r.seconds.toFixed(1)} s`);
  return lines.join('\n');
}

function positiveInt(flags: Record<string, string | boolean>, name: string, dflt: number, max?: number): number {
  return flagInt(flags, name, dflt, 1, max)!;
}

/** Seed s draws its data sets with the 32-bit seeds 16·s + k, so seeds stop at 2^28 - 1 (a larger one would repeat a smaller one's data). */
const MAX_SEED = 2 ** 28 - 1;

function probability(flags: Record<string, string | boolean>, name: string, dflt: number, lo = 0): number {
  const v = flagNumber(flags, name, dflt)!;
  if (!(v >= lo && v <= 1)) throw new UsageError(`--${name} must be in [${lo}, 1], got ${v}`);
  return v;
}

export const command: Command = {
  name: 'calibrated-ensembles',
  summary: 'ID-calibrated ensembles of standard and robust models under shift (arXiv 2207.08977)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, { command: 'calibrated-ensembles', verb: 'run', help: HELP, options: ['seeds', 'seed', 'classes', 'rho', 'agreement', 'core', 'robust', 'steps', 'n-train', 'n-val', 'n-test', 'bins', 'out', 'json'] });
    if (typeof flags === 'number') return flags;
    const classes = flagNumber(flags, 'classes', D.shift.classes)!;
    if (!Number.isInteger(classes) || classes < 2) throw new UsageError(`--classes must be an integer >= 2, got ${classes}`);
    const seeds = positiveInt(flags, 'seeds', D.seeds, MAX_SEED + 1);
    const seed0 = flagInt(flags, 'seed', D.seed0, 0, MAX_SEED + 1 - seeds)!;
    const core = flagString(flags, 'core') ?? D.shift.coreShape;
    if (core !== 'signed' && core !== 'linear') throw new UsageError(`--core must be 'signed' or 'linear', got '${core}'`);
    const robust = (flagString(flags, 'robust') ?? D.robust) as RobustMember;
    if (!ROBUST_MEMBERS.includes(robust)) throw new UsageError(`--robust must be one of ${ROBUST_MEMBERS.join(', ')}, got '${robust}'`);
    const cfg: ExperimentConfig = {
      ...D,
      robust,
      shift: { ...D.shift, classes, coreShape: core, rho: probability(flags, 'rho', D.shift.rho), spuriousAgreement: probability(flags, 'agreement', D.shift.spuriousAgreement, 1 / classes) },
      train: { ...D.train, steps: positiveInt(flags, 'steps', D.train.steps) },
      nTrain: positiveInt(flags, 'n-train', D.nTrain),
      nVal: positiveInt(flags, 'n-val', D.nVal),
      nTest: positiveInt(flags, 'n-test', D.nTest),
      seeds,
      seed0,
      bins: positiveInt(flags, 'bins', D.bins, MAX_BINS),
    };
    const out = flagString(flags, 'out') ?? join('runs', `calibrated-ensembles-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`);
    prepareOutDir(out);
    const { result, pooled } = runExperiment(cfg, (line) => console.error(`[calibrated-ensembles] ${line}`));
    writeFileSync(join(out, 'results.json'), JSON.stringify(result, null, 2) + '\n');
    const table = formatResult(result);
    writeFileSync(join(out, 'table.txt'), table + '\n');
    const curves = SHIFT_SPLITS.flatMap((split) => (['standard', 'robust', 'vanilla ensemble', 'calibrated ensemble'] as const).map((system) => ({
      panel: split, system, report: calibrationReport(pooled[split].probs[system], pooled[split].labels, { bins: cfg.bins, binning: 'equal-width' }),
    })));
    await writeReliabilityDiagram(join(out, 'reliability.svg'), curves, `reliability, ${cfg.seeds} seeds pooled`);
    if (flags.json) console.log(JSON.stringify(result, null, 2));
    else console.log(`${table}\nwrote ${join(out, 'results.json')}, ${join(out, 'table.txt')} and ${join(out, 'reliability.svg')}`);
    return 0;
  },
};

