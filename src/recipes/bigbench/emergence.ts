// Scaling statistics over a series of models ordered by scale (parameters or training FLOPs), as
// in BIG-bench (arXiv 2206.04615, section on linearity and breakthroughness) and the
// emergent-abilities paper (arXiv 2206.07682): per-task curves of the normalised preferred score,
//   I = sign(argmax − argmin) · (max − min)
//   linearity        L = I / sqrt(mean_i (y_{i+1} − y_i)²)
//   breakthroughness B = I / sqrt(median_i (y_{i+1} − y_i)²)
// a table that flags emergent tasks, and a Vega-Lite plot.
import { readFileSync } from 'node:fs';
import { KilnError } from '../../errors.js';
import type { VegaLiteSpec } from '../../plot/vegalite.js';
import { RESULTS_KIND, type RunResults } from './runner.js';

export interface ScalingStats {
  improvement: number;
  linearity: number;
  breakthroughness: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Statistics of one curve, scores ordered by increasing scale. ±Infinity where a denominator is 0. */
export function scalingStats(ys: readonly number[]): ScalingStats {
  if (ys.length < 2) throw new RangeError(`scaling statistics need at least 2 points, got ${ys.length}`);
  let iMax = 0;
  let iMin = 0;
  ys.forEach((y, i) => { if (y > ys[iMax]) iMax = i; if (y < ys[iMin]) iMin = i; });
  const improvement = Math.sign(iMax - iMin) * (ys[iMax] - ys[iMin]);
  const sq = ys.slice(1).map((y, i) => (y - ys[i]) ** 2);
  const ratio = (num: number, den: number) => (num === 0 ? 0 : den === 0 ? Math.sign(num) * Infinity : num / den);
  return {
    improvement,
    linearity: ratio(improvement, Math.sqrt(sq.reduce((a, b) => a + b, 0) / sq.length)),
    breakthroughness: ratio(improvement, Math.sqrt(median(sq))),
  };
}

export interface EmergenceCriteria {
  /** Smallest rise of the normalised score, smallest to largest model, to count (default 10 points). */
  minGain: number;
  /** Breakthroughness must be at least this multiple of linearity (default 2: a jump, not a trend). */
  breakthroughOverLinearity: number;
  /** The smallest model must score within this many points of chance (default 10). */
  nearChance: number;
}

export const DEFAULT_CRITERIA: EmergenceCriteria = { minGain: 10, breakthroughOverLinearity: 2, nearChance: 10 };

export interface TaskCurve {
  task: string;
  shots: number;
  scales: number[];
  labels: string[];
  scores: (number | null)[];
  stats: ScalingStats | null;
  emergent: boolean;
  reason: string;
}

/** Emergent: near chance at the smallest scale, a real rise, and a rise concentrated in few steps. */
export function isEmergent(ys: readonly number[], s: ScalingStats, c: EmergenceCriteria = DEFAULT_CRITERIA): { emergent: boolean; reason: string } {
  const gain = ys[ys.length - 1] - ys[0];
  if (Math.abs(ys[0]) > c.nearChance) return { emergent: false, reason: `smallest model already ${ys[0].toFixed(1)} from chance` };
  if (s.improvement <= 0 || gain < c.minGain) return { emergent: false, reason: `gain ${gain.toFixed(1)} < ${c.minGain}` };
  if (!(s.breakthroughness >= c.breakthroughOverLinearity * s.linearity)) return { emergent: false, reason: 'smooth: breakthroughness close to linearity' };
  return { emergent: true, reason: 'near chance, then a sharp rise' };
}

export interface ScaledResults { file: string; results: RunResults; scale: number; label: string }

/** Read a results file; `file@scale` overrides the scale recorded by `run --scale`. */
export function readScaledResults(arg: string): ScaledResults {
  const at = arg.lastIndexOf('@');
  const hasScale = at > 0 && /^[0-9.eE+-]+$/.test(arg.slice(at + 1));
  const file = hasScale ? arg.slice(0, at) : arg;
  let results: RunResults;
  try {
    results = JSON.parse(readFileSync(file, 'utf8')) as RunResults;
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `${file}: cannot read results: ${(e as Error).message}`);
  }
  if (results?.kind !== RESULTS_KIND || !Array.isArray(results.tasks)) throw new KilnError('INVALID_ARGUMENT', `${file}: not a kiln bigbench results file (kind ${JSON.stringify(results?.kind)})`);
  const scale = hasScale ? Number(arg.slice(at + 1)) : results.model?.scale;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) {
    throw new KilnError('INVALID_ARGUMENT', `${file}: no model scale: pass it as ${file}@<parameters or FLOPs>, or run with --scale`);
  }
  return { file, results, scale, label: results.model?.label ?? file };
}

/** Per model size, one RunResults whose task-level scores are the means over seeds (null where a seed has none). */
export function meanOverSeeds(runs: readonly RunResults[]): RunResults {
  const first = runs[0];
  const avg = (xs: (number | null | undefined)[]) => (xs.every((x): x is number => typeof x === 'number' && Number.isFinite(x)) ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    ...first,
    model: { ...first.model, spec: `${first.model?.spec} (mean of ${runs.length} seeds)` },
    tasks: first.tasks.map((t) => ({
      ...t,
      subtasks: [],
      perShot: t.perShot.map((p) => {
        const each = runs.map((r) => r.tasks.find((x) => x.name === t.name)?.perShot.find((x) => x.shots === p.shots));
        return {
          ...p,
          normalized: avg(each.map((e) => e?.normalized)),
          scores: Object.fromEntries(Object.keys(p.scores ?? {}).map((k) => [k, avg(each.map((e) => e?.scores?.[k]))])),
        };
      }),
    })),
    // Files read from disk are checked for their tasks only: a hand-written one may lack the rest.
    aggregate: (first.aggregate ?? []).map((g) => ({ ...g, normalized: avg(runs.map((r) => r.aggregate?.find((x) => x.shots === g.shots)?.normalized)) })),
    failedExamples: runs.reduce((n, r) => n + (r.failedExamples ?? 0), 0),
    incomplete: runs.some((r) => r.incomplete),
  };
}

/**
 * Several results files of one scale (seeds of one model size, as `kiln emergence --seeds N`
 * writes them) become one point: their seed mean (meanOverSeeds), as the emergence recipe's curves.
 */
export function averageSameScale(series: readonly ScaledResults[]): ScaledResults[] {
  const byScale = new Map<number, ScaledResults[]>();
  for (const s of series) byScale.set(s.scale, [...(byScale.get(s.scale) ?? []), s]);
  return [...byScale.values()].map((group) => group.length === 1 ? group[0] : {
    file: group.map((s) => s.file).join(' + '), results: meanOverSeeds(group.map((s) => s.results)), scale: group[0].scale,
    label: `${group[0].label} (mean of ${group.length})`,
  });
}

/** Per task and shot count, the normalised score at each scale and its statistics. */
export function taskCurves(series: readonly ScaledResults[], criteria: EmergenceCriteria = DEFAULT_CRITERIA): TaskCurve[] {
  if (series.length < 2) throw new KilnError('INVALID_ARGUMENT', `need results for at least 2 models, got ${series.length}`);
  const ordered = [...series].sort((a, b) => a.scale - b.scale);
  for (let i = 1; i < ordered.length; i++)
    if (ordered[i].scale === ordered[i - 1].scale)
      throw new KilnError('INVALID_ARGUMENT', `${ordered[i - 1].file} and ${ordered[i].file} have the same scale ${ordered[i].scale}: a scaling curve needs one model per scale`);
  const keys = new Map<string, { task: string; shots: number }>();
  for (const s of ordered) for (const t of s.results.tasks) for (const p of t.perShot) keys.set(`${t.name}\u0000${p.shots}`, { task: t.name, shots: p.shots });
  const curves: TaskCurve[] = [];
  for (const { task, shots } of keys.values()) {
    const scores = ordered.map((s) => s.results.tasks.find((t) => t.name === task)?.perShot.find((p) => p.shots === shots)?.normalized ?? null);
    const complete = scores.every((y): y is number => typeof y === 'number');
    const stats = complete ? scalingStats(scores as number[]) : null;
    const verdict = stats ? isEmergent(scores as number[], stats, criteria) : { emergent: false, reason: 'missing scores for some models' };
    curves.push({ task, shots, scales: ordered.map((s) => s.scale), labels: ordered.map((s) => s.label), scores, stats, ...verdict });
  }
  return curves.sort((a, b) => (a.task < b.task ? -1 : a.task > b.task ? 1 : a.shots - b.shots));
}

const fmt = (x: number | null | undefined, digits = 2) => (x === null || x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(digits) : x > 0 ? '+inf' : '-inf');

/** A Markdown table: one row per task and shot count, emergent tasks flagged. */
export function emergenceTable(curves: readonly TaskCurve[]): string {
  const labels = curves[0]?.labels ?? [];
  const head = ['task', 'shots', ...labels.map((l, i) => `${l} (${curves[0].scales[i].toExponential(1)})`), 'I', 'linearity', 'breakthroughness', 'emergent'];
  const rows = curves.map((c) => [c.task, String(c.shots), ...c.scores.map((y) => fmt(y, 1)), fmt(c.stats?.improvement, 1), fmt(c.stats?.linearity), fmt(c.stats?.breakthroughness), c.emergent ? 'YES' : 'no']);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

/** JSON cannot hold Infinity: write it as the strings "Infinity" / "-Infinity". */
export function jsonWithInfinity(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) && !Number.isNaN(v) ? (v > 0 ? 'Infinity' : '-Infinity') : v), 2);
}

/** Normalised score against scale (log axis), one line per task, one panel per shot count. */
export function emergenceSpec(curves: readonly TaskCurve[]): VegaLiteSpec {
  const values = curves.flatMap((c) => c.scores.map((y, i) => ({
    task: c.emergent ? `${c.task} (emergent)` : c.task, shots: `${c.shots}-shot`, scale: c.scales[i], model: c.labels[i], score: y,
  }))).filter((v) => v.score !== null);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'BIG-bench normalised preferred score against model scale',
    data: { values },
    facet: { column: { field: 'shots', type: 'ordinal', title: null } },
    spec: {
      width: 260,
      height: 200,
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: 0 } } },
        {
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'scale', type: 'quantitative', scale: { type: 'log' }, axis: { format: '.0e', tickCount: 5, labelAngle: -30 }, title: 'scale (parameters or FLOPs)' },
            y: { field: 'score', type: 'quantitative', title: 'normalised score (0 = chance, 100 = best)' },
            color: { field: 'task', type: 'nominal' },
            tooltip: [{ field: 'model' }, { field: 'score', type: 'quantitative', format: '.1f' }],
          },
        },
      ],
    },
  } as VegaLiteSpec;
}
