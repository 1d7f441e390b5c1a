// Plots are Vega-Lite specs rendered to SVG headlessly (no canvas, no browser).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { writeFileSync } from 'node:fs';

export type VegaLiteSpec = TopLevelSpec;

/** Render a Vega-Lite spec (data inlined under `data.values`) to an SVG string. */
export async function renderVegaLiteSvg(spec: VegaLiteSpec): Promise<string> {
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Render a spec and write it, plus the spec itself next to it (`<file>.vl.json`). */
export async function writeVegaLiteSvg(path: string, spec: VegaLiteSpec): Promise<void> {
  writeFileSync(path, await renderVegaLiteSvg(spec));
  writeFileSync(path.replace(/\.svg$/, '') + '.vl.json', JSON.stringify(spec, null, 2));
}
