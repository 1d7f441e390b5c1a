// What the recipe commands share when they report a run: the acceptance lines of a table, the
// default run folder, writing the folder's files, and the probe-accuracy chart of `ssl` and `clip`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagString, prepareOutDir, type ParsedArgs } from '../cli/args.js';
import { writeVegaLiteSvg, type VegaLiteSpec } from '../plot/vegalite.js';

/** A fraction as a percentage with one decimal. */
export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export interface Check {
  name: string;
  pass: boolean;
  /** The data cannot decide the check (e.g. a ratio over a zero gain): printed as n/a, not pass or FAIL. */
  unjudged?: boolean;
  rule: string;
}

/** "acceptance:" and one [pass] / [FAIL] / [n/a] line per check (nothing when there are none). */
export function acceptanceLines(checks: readonly Check[]): string[] {
  if (!checks.length) return [];
  return ['', 'acceptance:', ...checks.map((a) => `  [${a.unjudged ? 'n/a' : a.pass ? 'pass' : 'FAIL'}] ${a.name}   (${a.rule})`)];
}

/** --out, or runs/<name>-<UTC date and time>. */
export function runDir(flags: ParsedArgs['flags'], name: string): string {
  return flagString(flags, 'out') ?? join('runs', `${name}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`);
}

/** runDir, created now: called once the options are checked, so a bad --out fails before the run. */
export function prepareRunDir(flags: ParsedArgs['flags'], name: string): string {
  return prepareOutDir(runDir(flags, name));
}

/**
 * Writes results.json, table.txt and each chart (name -> spec) to `out`, then prints the results
 * as JSON (--json) or the table and what was written.
 */
export async function writeRun(out: string, result: unknown, table: string, charts: Record<string, VegaLiteSpec>, json: boolean, extra: string[] = []): Promise<void> {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(out, 'table.txt'), table + '\n');
  for (const [name, spec] of Object.entries(charts)) await writeVegaLiteSvg(join(out, name), spec);
  const files = ['results.json', 'table.txt', ...Object.keys(charts), ...extra];
  if (json) console.log(JSON.stringify(result, null, 2));
  else console.log(`${table}\nwrote ${files.slice(0, -1).join(', ')} and ${files[files.length - 1]} to ${out}`);
}

/** Linear-probe accuracy per method on two task columns: bars are means over seeds, dots single seeds. */
export function probeChart(title: string, rows: { method: string; prototypeAcc: number; coarseAcc: number }[], coarseLabel: string): VegaLiteSpec {
  const values = rows.flatMap((s) => [
    { method: s.method, task: 'prototype', accuracy: s.prototypeAcc },
    { method: s.method, task: coarseLabel, accuracy: s.coarseAcc },
  ]);
  const x = { field: 'method', type: 'nominal', sort: null, title: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    facet: { column: { field: 'task', type: 'nominal', title: null } },
    spec: {
      layer: [
        { mark: 'bar', encoding: { x, y: { aggregate: 'mean', field: 'accuracy', type: 'quantitative', title: 'test accuracy', scale: { domain: [0, 1] } } } },
        { mark: { type: 'point', color: 'black' }, encoding: { x, y: { field: 'accuracy', type: 'quantitative' } } },
      ],
      width: 250,
    },
  } as VegaLiteSpec;
}
