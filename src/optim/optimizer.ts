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
  /**
   * Per parameter (in group order): the updates it has had, which bias-correct its moments (torch
   * keeps a step per parameter too). Absent in states written before it existed: a parameter with
   * state then counts `step` updates, one without none.
   */
  steps?: number[];
  groups: Record<string, unknown>[];
  /** Per parameter (in group order): named state tensors. */
  state: Record<string, Tensor>[];
}

export abstract class Optimizer<O extends GroupOptions = GroupOptions> {
  readonly paramGroups: ParamGroup<O>[];
  /** Number of step() calls so far. */
  stepCount = 0;
  protected readonly state = new Map<Tensor, Record<string, Tensor>>();
  /** Per parameter: the updates it has had (a parameter without a gradient on a step is not updated). */
  private readonly paramSteps = new Map<Tensor, number>();

  /**
   * `check` validates one group's options beyond lr and weightDecay (each optimizer's own: betas,
   * momentum, ...); it runs on every group, here and on a loaded state.
   */
  constructor(params: ParamsArg<O>, defaults: O, private readonly name: string, private readonly check: (name: string, o: O) => void = () => {}) {
    if (!Array.isArray(params) || params.length === 0) throw new KilnError('INVALID_ARGUMENT', `${name}: needs a non-empty list of parameters`);
    const groups = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ({ params: Tensor[] } & Partial<O>)[]);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params))
        throw new KilnError('INVALID_ARGUMENT', `${name}: parameter group ${gi} must be { params: Tensor[], ...options }`);
      const { params: ps, ...over } = g;
      const options = { ...defaults, ...over } as O;
      validate(name, options);
      check(name, options);
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

  /**
   * Frees the per-parameter state tensors (moments) and the parameters' gradients; the parameters
   * and the step count stay. A later step starts from zeroed moments (and per-parameter step
   * counts, as a fresh optimizer would).
   */
  dispose(): void {
    this.zeroGrad();
    for (const st of this.state.values()) for (const t of Object.values(st)) t.dispose();
    this.state.clear();
    this.paramSteps.clear();
  }

  /** Applies one update from the parameters' current gradients (parameters without one are skipped). */
  step(): void {
    // Everything is checked before the first parameter changes: a refused step changes nothing.
    for (const p of this.params) {
      if (p.isDisposed)  // model.to(dtype / device) after building the optimizer leaves it the old tensors
        throw new KilnError('DISPOSED', `${this.name}: parameter ${shapeStr(p.shape)} was disposed (was the model moved or cast after the optimizer was built? build the optimizer after)`);
      p.assertLive(`${this.name} step`);
      const g = p.grad as unknown;
      if (g === null || g === undefined) continue;
      if (!(g instanceof Tensor))
        throw new KilnError('INVALID_ARGUMENT', `${this.name}: the gradient of parameter ${shapeStr(p.shape)} is not a Tensor`);
      g.assertLive(`${this.name}: the gradient of parameter ${shapeStr(p.shape)}`);
      if (g.ndim !== p.ndim || g.shape.some((d, i) => d !== p.shape[i]))
        throw new KilnError('SHAPE_MISMATCH', `${this.name}: gradient ${shapeStr(g.shape)} for parameter ${shapeStr(p.shape)}`);
    }
    this.stepCount++;
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (!p.grad) continue;
          const g = p.grad.dtype === p.dtype ? contig(p.grad) : contig(p.grad.to(p.dtype));
          const t = (this.paramSteps.get(p) ?? 0) + 1;
          this.paramSteps.set(p, t);
          try {
            this.update(p, g, group.options, this.stateFor(p), t);
          } finally {
            if (g !== p.grad) g.dispose();
          }
        }
      }
    });
  }

  /** `t`: this parameter's update count, this one included (1 on its first). */
  protected abstract update(p: Tensor, g: Tensor, o: O, state: Record<string, Tensor>, t: number): void;
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
      steps: this.params.map((p) => this.paramSteps.get(p) ?? 0),
    };
  }

  /** Throws (changing nothing) unless `sd` fits this optimizer's parameters. */
  checkStateDict(sd: OptimizerState): void {
    const params = this.params;
    const what = `${this.name} loadStateDict`;
    if (!sd || typeof sd !== 'object' || !Array.isArray(sd.groups) || !Array.isArray(sd.state))
      throw new KilnError('INVALID_ARGUMENT', `${what}: not an optimizer state`);
    if (!(Number.isSafeInteger(sd.step ?? 0) && (sd.step ?? 0) >= 0))
      throw new KilnError('INVALID_ARGUMENT', `${what}: step must be an integer >= 0, got ${JSON.stringify(sd.step)}`);
    if (!sd.groups.every((g) => g !== null && typeof g === 'object') || !sd.state.every((s) => s !== null && typeof s === 'object'))
      throw new KilnError('INVALID_ARGUMENT', `${what}: groups and state must be lists of objects`);
    if (sd.steps !== undefined && (!Array.isArray(sd.steps) || sd.steps.length !== params.length ||
        !sd.steps.every((t) => Number.isSafeInteger(t) && t >= 0)))
      throw new KilnError('INVALID_ARGUMENT', `${what}: steps must be ${params.length} integers >= 0, got ${JSON.stringify(sd.steps)}`);
    if (sd.groups.length !== this.paramGroups.length || sd.state.length !== params.length)
      throw new KilnError('INVALID_ARGUMENT',
        `optimizer loadStateDict: ${sd.groups.length} groups / ${sd.state.length} parameters in the state, ${this.paramGroups.length} / ${params.length} here`);
    const merged = sd.groups.map((g, i) => {
      if (g.size !== undefined && g.size !== this.paramGroups[i].params.length)
        throw new KilnError('INVALID_ARGUMENT', `${what}: group ${i} has ${g.size} parameters in the state, ${this.paramGroups[i].params.length} here`);
      const { initialLr, size: _size, ...opts } = g as Record<string, unknown>;
      if (initialLr !== undefined && !(typeof initialLr === 'number' && Number.isFinite(initialLr) && initialLr >= 0))
        throw new KilnError('INVALID_ARGUMENT', `${what}: group ${i}'s initialLr must be finite and >= 0, got ${JSON.stringify(initialLr)}`);
      const o = { ...this.paramGroups[i].options, ...opts } as O;
      validate(`${what} (group ${i})`, o);
      this.check(`${what} (group ${i})`, o);
      return o;
    });
    const groupOf = this.paramGroups.flatMap((g, gi) => g.params.map(() => gi));
    sd.state.forEach((s, i) => {
      const p = params[i];
      for (const [k, t] of Object.entries(s)) {
        if (!(t instanceof Tensor) || t.size !== p.size || t.dtype !== p.dtype)
          throw new KilnError('SHAPE_MISMATCH',
            `${what}: state '${k}' of parameter ${i} is ${t instanceof Tensor ? `${t.dtype} ${shapeStr(t.shape)}` : typeof t}, parameter is ${p.dtype} ${shapeStr(p.shape)}`);
        t.assertLive(`${what}: state '${k}' of parameter ${i}`);
      }
      // A parameter's state is all of its slots or none (it never had a gradient): a missing slot
      // would restart at zero and the resumed run would differ.
      const names = this.stateNames(merged[groupOf[i]]), have = Object.keys(s);
      if (have.length && (have.length !== names.length || !names.every((n) => have.includes(n))))
        throw new KilnError('INVALID_ARGUMENT', `${what}: parameter ${i} has state [${have.join(', ')}], want [${names.join(', ')}]`);
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
    // Copies first, then the old state goes: sd may hold this optimizer's own state tensors.
    const fresh = sd.state.map((s, i) => {
      const p = params[i];
      const own: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(s)) {
        const c = keep(zerosLike(p));
        const src = t.reshape(p.shape.slice());
        stridedCopy(c, src);
        if (src !== t) src.dispose();
        own[k] = c;
      }
      return own;
    });
    for (const old of this.state.values()) for (const t of Object.values(old)) t.dispose();
    this.state.clear();
    fresh.forEach((own, i) => this.state.set(params[i], own));
    this.paramSteps.clear();
    params.forEach((p, i) => {
      const t = sd.steps ? sd.steps[i] : Object.keys(sd.state[i]).length ? this.stepCount : 0;
      if (t > 0) this.paramSteps.set(p, t);
    });
  }
}

function validate(name: string, o: GroupOptions): void {
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) throw new KilnError('INVALID_ARGUMENT', `${name}: lr must be finite and >= 0, got ${o.lr}`);
  if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) throw new KilnError('INVALID_ARGUMENT', `${name}: weightDecay must be finite and >= 0, got ${o.weightDecay}`);
}
