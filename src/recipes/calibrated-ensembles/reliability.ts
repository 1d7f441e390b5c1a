// Reliability diagrams: per-bin accuracy against mean confidence, one line per system, rendered
// from a Vega-Lite spec to SVG (the diagonal is perfect calibration).
import { writeVegaLiteSvg, type VegaLiteSpec } from '../../plot/vegalite.js';
import type { CalibrationReport } from './calibration.js';

export interface ReliabilityCurve {
  /** Panel (e.g. the split) and line (e.g. the system) this report belongs to. */
  panel: string;
  system: string;
  report: CalibrationReport;
}

export function reliabilitySpec(curves: ReliabilityCurve[], title = 'reliability diagram'): VegaLiteSpec {
  const values: Record<string, unknown>[] = [];
  const panels = [...new Set(curves.map((c) => c.panel))];
  for (const panel of panels) for (const v of [0, 1]) values.push({ panel, system: 'perfect calibration', confidence: v, accuracy: v, count: 0 });
  for (const { panel, system, report } of curves) {
    const label = `${system} (ECE ${(100 * report.ece).toFixed(1)}%)`;
    for (const b of report.table) if (b.count) values.push({ panel, system, label, confidence: b.confidence, accuracy: b.accuracy, count: b.count });
  }
  const bins = curves[0]?.report;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: bins ? `${title} (${bins.bins} ${bins.binning} bins)` : title,
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: panels } },
    spec: {
      width: 260,
      height: 260,
      layer: [
        {
          transform: [{ filter: "datum.system === 'perfect calibration'" }],
          mark: { type: 'line', strokeDash: [4, 4], color: 'gray' },
          encoding: {
            x: { field: 'confidence', type: 'quantitative', scale: { domain: [0, 1] }, title: 'mean confidence in bin' },
            y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy in bin' },
          },
        },
        {
          transform: [{ filter: "datum.system !== 'perfect calibration'" }],
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'confidence', type: 'quantitative' },
            y: { field: 'accuracy', type: 'quantitative' },
            color: { field: 'system', type: 'nominal', title: null },
          },
        },
      ],
    },
  } as VegaLiteSpec;
}

/** Writes the diagram to `path` (and its spec to `<path>.vl.json`). */
export async function writeReliabilityDiagram(path: string, curves: ReliabilityCurve[], title?: string): Promise<void> {
  await writeVegaLiteSvg(path, reliabilitySpec(curves, title));
}
