// Summaries over seeds that the recipes share.

/** Mean and sample standard deviation (n - 1; 0 for one value) over seeds. */
export interface Summary {
  mean: number;
  std: number;
}

export function meanStd(v: readonly number[]): Summary {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}
