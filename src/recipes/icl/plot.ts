// The paper's figure: normalised squared error against in-context examples, one line per
// predictor with its bootstrap 90% band, rendered from a Vega-Lite spec to SVG.
import { writeVegaLiteSvg, type VegaLiteSpec } from '../../plot/vegalite.js';
import type { EvalReport } from './evaluate.js';

export function curveSpec(r: EvalReport, title?: string): VegaLiteSpec {
  const values: { k: number; error: number; lo: number; hi: number; predictor: string }[] = [];
  for (const [name, c] of Object.entries(r.curves))
    c.errors.forEach((e, k) => values.push({ k, error: e.mean, lo: e.lo, hi: e.hi, predictor: name }));
  // Interpolation peaks (least squares on trees at k = d) would flatten everything else.
  const clip = 2;
  const y = { type: 'quantitative' as const, scale: { domain: [0, clip], clamp: true } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: title ?? `${r.task}, d = ${r.d}${r.shift !== 'none' ? `, shift: ${r.shift}` : ''}${r.step !== undefined ? ` (model at step ${r.step})` : ''}`,
    width: 520,
    height: 320,
    data: { values },
    encoding: {
      x: { field: 'k', type: 'quantitative', title: 'in-context examples k' },
      color: { field: 'predictor', type: 'nominal', title: null },
    },
    layer: [
      { mark: { type: 'area', opacity: 0.15 }, encoding: { y: { field: 'lo', ...y, title: 'squared error (normalised)' }, y2: { field: 'hi' } } },
      { mark: { type: 'line', point: true, clip: true }, encoding: { y: { field: 'error', ...y, title: 'squared error (normalised)' } } },
    ],
  } as VegaLiteSpec;
}

export async function writeCurvePlot(path: string, r: EvalReport, title?: string): Promise<void> {
  await writeVegaLiteSvg(path, curveSpec(r, title));
}

/** A plain-text table: error (and interval) of each predictor at the chosen k. */
export function formatTable(r: EvalReport, ks?: number[]): string {
  const n = r.points;
  const pick = ks ?? [...new Set([0, 1, Math.floor(r.d / 2), r.d - 1, r.d, Math.min(2 * r.d, n - 1), n - 1])].filter((k) => k >= 0 && k < n).sort((a, b) => a - b);
  const names = Object.keys(r.curves);
  const cell = (s: string, k: number) => {
    const e = r.curves[s].errors[k];
    return `${e.mean.toFixed(3)} [${e.lo.toFixed(2)},${e.hi.toFixed(2)}]`;
  };
  // Each column as wide as its widest cell (large errors under a shift make wide cells), 2 apart.
  const w = Math.max(20, ...names.map((s) => s.length), ...names.flatMap((s) => pick.map((k) => cell(s, k).length))) + 2;
  const lines = [`${r.task}, d = ${r.d}, shift ${r.shift}: normalised squared error (mean [90% bootstrap interval])`];
  lines.push('k'.padEnd(5) + names.map((s) => s.padStart(w)).join(''));
  for (const k of pick) lines.push(String(k).padEnd(5) + names.map((s) => cell(s, k).padStart(w)).join(''));
  return lines.join('\n');
}
