// The optimizer base: parameter groups with their own hyper-parameters, per-parameter state
// tensors, zeroGrad, and a state dict for checkpoints. Updates run through fused native kernels
// directly on parameter memory: they never touch the autograd graph.
import { KilnError, shapeStr } from '../errors.js';
import { noGrad } from '../tensor/autograd.js';
import { keep } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { zerosLike } from '../ops/creation.js';
import { contig } from '../ops/util.js';
import { needFullFloat } from './clip.js';
import { stridedCopy } from '../tensor/tensor.js';

export interface GroupOptions {
  lr: number;
  weightDecay: number;
  [k: string]: number | boolean | [number, number];
}

export interface ParamGroup<O extends GroupOptions = GroupOptions> {
  params: Tensor[];
  options: O;
  /** The lr the group was built with: schedules scale this. */
  initialLr: number;
}

/** O's named options, optional, without GroupOptions' index signature (which `params` would have to satisfy). */
export type GroupSpec<O> = { params: Tensor[] } & { [K in keyof O as string extends K ? never : K]?: O[K] };
export type ParamsArg<O> = Tensor[] | GroupSpec<O>[];

export interface OptimizerState {
  step: number;
  groups: Record<string, unknown>[];
  /** Per parameter (in group order): named state tensors. */
  state: Record<string, Tensor>[];
}

export abstract class Optimizer<O extends GroupOptions = GroupOptions> {
  readonly paramGroups: ParamGroup<O>[];
  /** Number of step() calls so far. */
  stepCount = 0;
  protected readonly state = new Map<Tensor, Record<string, Tensor>>();

  constructor(params: ParamsArg<O>, defaults: O, name: string) {
    if (!Array.isArray(params) || params.length === 0) throw new KilnError('INVALID_ARGUMENT', `${name}: needs a non-empty list of parameters`);
    const groups = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ({ params: Tensor[] } & Partial<O>)[]);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g) => {
      const { params: ps, ...over } = g;
      const options = { ...defaults, ...over } as O;
      validate(name, options);
      for (const p of ps) {
        if (!(p instanceof Tensor)) throw new KilnError('INVALID_ARGUMENT', `${name}: parameters must be Tensors`);
        needFullFloat(name, p);
        if (!p.isContiguous()) throw new KilnError('INVALID_ARGUMENT', `${name}: parameter ${shapeStr(p.shape)} is not contiguous`);
        if (seen.has(p)) throw new KilnError('INVALID_ARGUMENT', `${name}: a parameter appears twice`);
        seen.add(p);
      }
      return { params: [...ps], options, initialLr: options.lr };
    });
  }

  /** All parameters, in group order. */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** The first group's learning rate; setting it sets every group's. */
  get lr(): number {
    return this.paramGroups[0].options.lr;
  }
  set lr(v: number) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new KilnError('INVALID_ARGUMENT', `lr must be a finite number >= 0, got ${v}`);
    for (const g of this.paramGroups) g.options.lr = v;
  }

  /** Sets every group's lr to factor x its initial lr (what schedules call). */
  setLrFactor(factor: number): void {
    if (!(factor >= 0) || !Number.isFinite(factor)) throw new KilnError('INVALID_ARGUMENT', `lr factor must be finite and >= 0, got ${factor}`);
    for (const g of this.paramGroups) g.options.lr = g.initialLr * factor;
  }

  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Applies one update from the parameters' current gradients (parameters without one are skipped). */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (!p.grad) continue;
          p.assertLive('optimizer step');
          const g = p.grad.dtype === p.dtype ? contig(p.grad) : contig(p.grad.to(p.dtype));
          if (g.size !== p.size)
            throw new KilnError('SHAPE_MISMATCH', `optimizer: gradient ${shapeStr(g.shape)} for parameter ${shapeStr(p.shape)}`);
          try {
            this.update(p, g, group.options, this.stateFor(p));
          } finally {
            if (g !== p.grad) g.dispose();
          }
        }
      }
    });
  }

  protected abstract update(p: Tensor, g: Tensor, o: O, state: Record<string, Tensor>): void;
  protected abstract stateNames(o: O): string[];

  private stateFor(p: Tensor): Record<string, Tensor> {
    let s = this.state.get(p);
    if (!s) {
      s = {};
      this.state.set(p, s);
    }
    return s;
  }

  /** A zero-filled state tensor shaped like p (created once, kept across scopes). */
  protected slot(state: Record<string, Tensor>, name: string, p: Tensor): Tensor {
    return (state[name] ??= keep(zerosLike(p)));
  }

  /** Step count, group hyper-parameters and state tensors (live references, not copies). */
  stateDict(): OptimizerState {
    return {
      step: this.stepCount,
      groups: this.paramGroups.map((g) => ({ ...g.options, initialLr: g.initialLr, size: g.params.length })),
      state: this.params.map((p) => ({ ...(this.state.get(p) ?? {}) })),
    };
  }

  /** Throws (changing nothing) unless `sd` fits this optimizer's parameters. */
  checkStateDict(sd: OptimizerState): void {
    const params = this.params;
    if (!sd || !Array.isArray(sd.groups) || !Array.isArray(sd.state))
      throw new KilnError('INVALID_ARGUMENT', 'optimizer loadStateDict: not an optimizer state');
    if (sd.groups.length !== this.paramGroups.length || sd.state.length !== params.length)
      throw new KilnError('INVALID_ARGUMENT',
        `optimizer loadStateDict: ${sd.groups.length} groups / ${sd.state.length} parameters in the state, ${this.paramGroups.length} / ${params.length} here`);
    sd.groups.forEach((g, i) => {
      if (g.size !== undefined && g.size !== this.paramGroups[i].params.length)
        throw new KilnError('INVALID_ARGUMENT', `optimizer loadStateDict: group ${i} has ${g.size} parameters in the state, ${this.paramGroups[i].params.length} here`);
    });
    sd.state.forEach((s, i) => {
      for (const [k, t] of Object.entries(s)) {
        const p = params[i];
        if (!(t instanceof Tensor) || t.size !== p.size || t.dtype !== p.dtype)
          throw new KilnError('SHAPE_MISMATCH',
            `optimizer loadStateDict: state '${k}' of parameter ${i} is ${t instanceof Tensor ? `${t.dtype} ${shapeStr(t.shape)}` : typeof t}, parameter is ${p.dtype} ${shapeStr(p.shape)}`);
      }
    });
  }

  /** Restores what stateDict() returned (tensors are copied into fresh state). Checked before anything changes. */
  loadStateDict(sd: OptimizerState): void {
    this.checkStateDict(sd);
    const params = this.params;
    this.stepCount = sd.step ?? 0;
    sd.groups.forEach((g, i) => {
      const { initialLr, size, ...opts } = g as Record<string, unknown>;
      Object.assign(this.paramGroups[i].options, opts);
      if (typeof initialLr === 'number') this.paramGroups[i].initialLr = initialLr;
    });
    for (const old of this.state.values()) for (const t of Object.values(old)) t.dispose();
    this.state.clear();
    sd.state.forEach((s, i) => {
      const p = params[i];
      const own: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(s)) {
        const c = keep(zerosLike(p));
        stridedCopy(c, t.reshape(p.shape.slice()));
        own[k] = c;
      }
      this.state.set(p, own);
    });
  }
}

function validate(name: string, o: GroupOptions): void {
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) throw new KilnError('INVALID_ARGUMENT', `${name}: lr must be finite and >= 0, got ${o.lr}`);
  if (!(o.weightDecay >= 0)) throw new KilnError('INVALID_ARGUMENT', `${name}: weightDecay must be >= 0, got ${o.weightDecay}`);
}
