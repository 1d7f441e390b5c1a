// The idealized setting of Dubois et al. (arXiv 2209.06235) made concrete: a world of P latent
// images ("prototypes"), each a few coloured Gaussian blobs on a small RGB canvas, and an
// augmentation that draws any member of a prototype's equivalence class: it moves the whole scene,
// rescales the blobs, jitters each colour channel, adds a distractor blob and pixel noise. So the
// equivalence classes of the augmentation are exactly the prototypes, and every downstream task
// that is invariant to augmentations is a function of the prototype: the paper's assumption. The
// tasks scored here are the prototype itself (P-way) and random coarse groupings of prototypes.
import { KilnError } from '../../errors.js';
import { Gaussian, mixSeed } from '../icl/tasks.js';

export interface WorldConfig {
  /** Number of prototypes (equivalence classes). */
  prototypes: number;
  /** Canvas side in pixels (3 channels). */
  size: number;
  /** Blobs per prototype. */
  blobs: number;
  /** Largest shift of the scene, in pixels, in each direction. */
  maxShift: number;
  /** Blob widths are scaled by a factor in [1 / s, s]. */
  widthJitter: number;
  /** Each colour channel is scaled by a factor in [1 - c, 1 + c]. */
  colorJitter: number;
  /** Amplitude of the random distractor blob (0: none). */
  distractor: number;
  /** Standard deviation of the pixel noise. */
  noise: number;
}

export const DEFAULT_WORLD: WorldConfig = {
  prototypes: 64, size: 16, blobs: 3, maxShift: 3, widthJitter: 1.3, colorJitter: 0.4, distractor: 0.4, noise: 0.05,
};

interface Blob {
  cx: number;
  cy: number;
  width: number;
  rgb: [number, number, number];
}

/** One image per row, channel-major [3, size, size], as float32. */
export interface Images {
  x: Float32Array;
  n: number;
  dims: number;
}

export class World {
  readonly protos: Blob[][];
  readonly dims: number;
  constructor(readonly config: WorldConfig, readonly seed: number) {
    const c = config;
    const int = (v: number, lo: number, name: string) => {
      if (!Number.isInteger(v) || v < lo) throw new KilnError('INVALID_ARGUMENT', `ssl World: ${name} must be an integer >= ${lo}, got ${v}`);
    };
    int(c.prototypes, 2, 'prototypes');
    int(c.size, 4, 'size');
    int(c.blobs, 1, 'blobs');
    for (const [k, v] of [['maxShift', c.maxShift], ['colorJitter', c.colorJitter], ['distractor', c.distractor], ['noise', c.noise]] as const)
      if (!(Number.isFinite(v) && v >= 0)) throw new KilnError('INVALID_ARGUMENT', `ssl World: ${k} must be a finite number >= 0, got ${v}`);
    if (!(c.widthJitter >= 1 && Number.isFinite(c.widthJitter))) throw new KilnError('INVALID_ARGUMENT', `ssl World: widthJitter must be >= 1, got ${c.widthJitter}`);
    if (c.colorJitter >= 1) throw new KilnError('INVALID_ARGUMENT', `ssl World: colorJitter must be < 1, got ${c.colorJitter}`);
    this.dims = 3 * c.size * c.size;
    const g = new Gaussian(mixSeed(seed, 0x5e1f));
    const S = c.size;
    this.protos = Array.from({ length: c.prototypes }, () => Array.from({ length: c.blobs }, () => ({
      cx: 0.2 * S + 0.6 * S * g.uniform(),
      cy: 0.2 * S + 0.6 * S * g.uniform(),
      width: S * (0.06 + 0.1 * g.uniform()),
      rgb: [g.uniform(), g.uniform(), g.uniform()].map((v) => 0.2 + 0.8 * v) as [number, number, number],
    })));
  }

  /**
   * Renders one augmented view of each listed prototype into a fresh batch. `g` supplies the
   * augmentation's randomness, so a view is a pure function of (prototype, stream state).
   */
  render(protoIds: ArrayLike<number>, g: Gaussian): Images {
    const c = this.config, S = c.size, P = S * S, n = protoIds.length;
    const x = new Float32Array(n * this.dims);
    const lw = Math.log(c.widthJitter);
    const splat = (img: number, b: Blob, dx: number, dy: number, ws: number, amp: number, col: readonly number[]) => {
      const cx = b.cx + dx, cy = b.cy + dy, inv = 1 / (2 * (b.width * ws) ** 2);
      const base = img * this.dims;
      for (let yy = 0; yy < S; yy++) {
        const ey = (yy - cy) ** 2;
        for (let xx = 0; xx < S; xx++) {
          const v = amp * Math.exp(-((xx - cx) ** 2 + ey) * inv);
          if (v < 1e-4) continue;
          const p = yy * S + xx;
          x[base + p] += v * col[0];
          x[base + P + p] += v * col[1];
          x[base + 2 * P + p] += v * col[2];
        }
      }
    };
    for (let i = 0; i < n; i++) {
      const id = protoIds[i];
      if (!(Number.isInteger(id) && id >= 0 && id < c.prototypes))
        throw new KilnError('INVALID_ARGUMENT', `ssl World.render: prototype ${id} is outside [0, ${c.prototypes})`);
      const dx = (2 * g.uniform() - 1) * c.maxShift, dy = (2 * g.uniform() - 1) * c.maxShift;
      const ws = Math.exp((2 * g.uniform() - 1) * lw);
      const jit = [0, 1, 2].map(() => 1 + (2 * g.uniform() - 1) * c.colorJitter);
      for (const b of this.protos[id]) splat(i, b, dx, dy, ws, 1, b.rgb.map((v, k) => v * jit[k]));
      if (c.distractor > 0) {
        const d: Blob = { cx: S * g.uniform(), cy: S * g.uniform(), width: S * (0.06 + 0.1 * g.uniform()), rgb: [g.uniform(), g.uniform(), g.uniform()] };
        splat(i, d, 0, 0, 1, c.distractor, d.rgb);
      }
      if (c.noise > 0) for (let k = i * this.dims; k < (i + 1) * this.dims; k++) x[k] += c.noise * g.normal();
    }
    return { x, n, dims: this.dims };
  }

  /** `perProto` labelled views of every prototype (ids in prototype order, repeated). */
  labelled(perProto: number, g: Gaussian): { images: Images; ids: Int32Array } {
    const ids = new Int32Array(perProto * this.config.prototypes);
    for (let i = 0; i < ids.length; i++) ids[i] = i % this.config.prototypes;
    return { images: this.render(ids, g), ids };
  }
}

/** A downstream task: a label for every prototype (-1: the prototype is not part of the task). */
export interface Task {
  name: string;
  classes: number;
  labelOf: Int32Array;
}

/**
 * The prototype itself among the first `fine` prototypes (a fine-grained `fine`-way task), and
 * `coarse` random balanced groupings of all prototypes into `groups` classes: all invariant to the
 * augmentation, so an idealized representation predicts every one of them linearly.
 */
export function downstreamTasks(prototypes: number, fine: number, coarse: number, groups: number, seed: number): Task[] {
  if (!(Number.isInteger(fine) && fine >= 2 && fine <= prototypes))
    throw new KilnError('INVALID_ARGUMENT', `ssl downstreamTasks: the prototype task needs between 2 and ${prototypes} prototypes, got ${fine}`);
  const tasks: Task[] = [{ name: 'prototype', classes: fine, labelOf: Int32Array.from({ length: prototypes }, (_, i) => (i < fine ? i : -1)) }];
  const g = new Gaussian(mixSeed(seed, 0x7a5c));
  for (let t = 0; t < coarse; t++) {
    const perm = Array.from({ length: prototypes }, (_, i) => i);
    for (let i = prototypes - 1; i > 0; i--) {
      const j = g.int(i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const labelOf = new Int32Array(prototypes);
    perm.forEach((p, r) => { labelOf[p] = r % groups; });
    tasks.push({ name: `coarse-${t + 1}`, classes: groups, labelOf });
  }
  return tasks;
}
