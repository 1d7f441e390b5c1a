// The function classes of Garg et al. (arXiv 2208.01066), as their code samples them: a fresh
// function per prompt, inputs x ~ N(0, I_d) with the coordinates beyond the curriculum's active
// dimensions set to zero. Everything is plain float64 TypeScript, seeded per (seed, step), so a
// batch is a pure function of its step (exact resume) and baselines see the same prompts.
import { seededRandom } from '../../train/data.js';

export type TaskName = 'linear' | 'sparse' | 'tree' | 'relu2nn' | 'noisy';
export const TASKS: readonly TaskName[] = ['linear', 'sparse', 'tree', 'relu2nn', 'noisy'];

export interface TaskOptions {
  /** Nonzero coordinates of a sparse w (the paper: 3). */
  sparsity?: number;
  /** Output noise std of noisy linear regression (default 1). */
  noiseStd?: number;
  /** Decision-tree depth (default 4). */
  depth?: number;
  /** Hidden units of the 2-layer ReLU nets (default 100). */
  hidden?: number;
}

/** A seeded stream of uniforms and standard normals (Box-Muller). */
export class Gaussian {
  readonly uniform: () => number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.uniform = seededRandom(seed);
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = this.uniform();
    while (u <= 1e-300) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.uniform() * n));
  }
}

/** Mixes integers into one 32-bit seed (for per-step, per-purpose streams). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
    h = (h ^ (h >>> 12)) >>> 0;
  }
  return h >>> 0;
}

/** One sampled function: y = f(x) for x = xs[off .. off + d). `noise` is added to training targets only. */
export interface SampledFunction {
  f(xs: ArrayLike<number>, off: number): number;
  noiseStd: number;
}

/** The squared-error normaliser that makes the zero predictor score about 1. */
export function errorScale(task: TaskName, d: number, o: TaskOptions = {}): number {
  if (task === 'sparse') return o.sparsity ?? 3;
  if (task === 'tree') return 1;
  return d; // linear, noisy linear, ReLU nets (their outputs are rescaled to variance d)
}

/**
 * Samples one function of `task` over R^d whose first `active` coordinates matter (the sparse
 * support and tree splits are drawn as the paper's code draws them: support among the active
 * coordinates, tree splits among all d, an inactive coordinate being always 0, i.e. "not > 0").
 */
export function sampleFunction(task: TaskName, g: Gaussian, d: number, active: number, o: TaskOptions = {}): SampledFunction {
  switch (task) {
    case 'linear':
    case 'noisy':
    case 'sparse': {
      const w = new Float64Array(d);
      for (let i = 0; i < d; i++) w[i] = g.normal();
      if (task === 'sparse') {
        const s = Math.min(o.sparsity ?? 3, active);
        const perm = Array.from({ length: active }, (_, i) => i);
        for (let i = active - 1; i > 0; i--) {
          const j = g.int(i + 1);
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        const keep = new Set(perm.slice(0, s));
        for (let i = 0; i < d; i++) if (!keep.has(i)) w[i] = 0;
      }
      return {
        f: (xs, off) => {
          let y = 0;
          for (let i = 0; i < d; i++) y += w[i] * xs[off + i];
          return y;
        },
        noiseStd: task === 'noisy' ? (o.noiseStd ?? 1) : 0,
      };
    }
    case 'tree': {
      const depth = o.depth ?? 4;
      const nodes = 2 ** (depth + 1) - 1;
      const coord = new Int32Array(nodes), leaf = new Float64Array(nodes);
      for (let i = 0; i < nodes; i++) coord[i] = g.int(d);
      for (let i = 0; i < nodes; i++) leaf[i] = g.normal();
      return {
        f: (xs, off) => {
          let node = 0;
          for (let j = 0; j < depth; j++) node = 2 * node + 1 + (xs[off + coord[node]] > 0 ? 1 : 0);
          return leaf[node];
        },
        noiseStd: 0,
      };
    }
    case 'relu2nn': {
      const h = o.hidden ?? 100;
      const w1 = new Float64Array(d * h), w2 = new Float64Array(h);
      for (let i = 0; i < d * h; i++) w1[i] = g.normal();
      for (let j = 0; j < h; j++) w2[j] = g.normal();
      const scale = Math.sqrt(2 / h);
      return {
        f: (xs, off) => {
          let y = 0;
          for (let j = 0; j < h; j++) {
            let a = 0;
            for (let i = 0; i < d; i++) a += xs[off + i] * w1[i * h + j];
            if (a > 0) y += a * w2[j];
          }
          return y * scale;
        },
        noiseStd: 0,
      };
    }
  }
}
