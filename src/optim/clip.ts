// Gradient clipping by global norm, and an exponential moving average of weights.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { noGrad } from '../tensor/autograd.js';
import { keep } from '../tensor/storage.js';
import { Tensor, stridedCopy } from '../tensor/tensor.js';
import { clone } from '../ops/views.js';
import { arg } from '../ops/util.js';
import type { Module } from '../nn/module.js';

/** The in-place kernels (optim.cc) update float32 / float64 only. */
export function needFullFloat(op: string, p: Tensor): void {
  if (p.dtype !== 'float32' && p.dtype !== 'float64')
    throw new KilnError('DTYPE_MISMATCH', `${op}: parameter ${shapeStr(p.shape)} is ${p.dtype}; parameters must be float32 or float64 ` +
      '(keep float32 master weights and compute in half precision with kiln.autocast)');
}

/** Makes p.grad a dense tensor of p's dtype (in-place kernels need one). */
function denseGrad(p: Tensor): Tensor | null {
  const g = p.grad as unknown;
  if (g === null || g === undefined) return null;
  if (!(g instanceof Tensor)) throw new KilnError('INVALID_ARGUMENT', `gradNorm: the gradient of parameter ${shapeStr(p.shape)} is not a Tensor`);
  g.assertLive(`gradNorm: the gradient of parameter ${shapeStr(p.shape)}`);
  needFullFloat('gradNorm', p);
  if (g.isContiguous() && g.dtype === p.dtype && g.offset === 0 && g.storage.bytes === g.size * (g.dtype === 'float64' ? 8 : 4)) return g;
  const c = noGrad(() => {
    const t = g.dtype === p.dtype ? g : g.to(p.dtype);
    return t === g ? clone(g) : t;
  });
  g.dispose();
  c._kept = true;
  p.grad = c;
  return c;
}

/** The L2 norm of all gradients together (computed in float64). */
export function gradNorm(params: Tensor[]): number {
  let s = 0;
  for (const p of params) {
    const g = denseGrad(p);
    if (!g) continue;
    A[0] = g.size;
    s += N.sumSquares(arg(4, g));
  }
  return Math.sqrt(s);
}

/**
 * Scales all gradients so that their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping. With errorIfNonfinite, a NaN/inf norm throws NON_FINITE.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number, opts: { errorIfNonfinite?: boolean } = {}): number {
  if (!(maxNorm > 0)) throw new KilnError('INVALID_ARGUMENT', `clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const total = gradNorm(params);
  if (!Number.isFinite(total) && opts.errorIfNonfinite)
    throw new KilnError('NON_FINITE', `clipGradNorm: the total gradient norm is ${total}`);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const p of params) {
      const g = p.grad;
      if (!g) continue;
      A[0] = g.size;
      A[1] = coef;
      N.scaleInplace(arg(4, g));
    }
  }
  return total;
}

/**
 * Exponential moving average of a model's parameters: shadow = decay * shadow + (1 - decay) * param
 * after each update(). applyTo() copies the averages into the model (store() first to restore later).
 */
export class EMA {
  readonly shadow: Map<string, Tensor> = new Map();
  private backup: Map<string, Tensor> | null = null;
  updates = 0;
  constructor(private readonly model: Module, readonly decay = 0.999) {
    if (!(decay >= 0 && decay <= 1)) throw new KilnError('INVALID_ARGUMENT', `EMA: decay must be in [0, 1], got ${decay}`);
    for (const [, p] of model.namedParameters()) needFullFloat('EMA', p);
    for (const [n, p] of model.namedParameters()) this.shadow.set(n, keep(noGrad(() => clone(p))));
  }

  update(): void {
    this.updates++;
    for (const [n, p] of this.model.namedParameters()) {
      const s = this.shadow.get(n);
      if (!s) continue;
      A[0] = p.size;
      A[1] = this.decay;
      N.emaUpdate(arg(4, s), arg(7, p));
    }
  }

  /** Copies the averaged weights into the model (the current ones are saved; restore() brings them back). */
  applyTo(): void {
    // A second call would save the averages as the weights to restore (and drop the first copies).
    if (this.backup) throw new KilnError('INVALID_ARGUMENT', 'EMA.applyTo: the averages are already applied; call restore() first');
    this.backup = new Map();
    for (const [n, p] of this.model.namedParameters()) {
      const s = this.shadow.get(n);
      if (!s) continue;
      this.backup.set(n, keep(noGrad(() => clone(p))));
      stridedCopy(p, s);
    }
  }

  restore(): void {
    if (!this.backup) throw new KilnError('INVALID_ARGUMENT', 'EMA.restore: applyTo() was not called');
    for (const [n, p] of this.model.namedParameters()) {
      const b = this.backup.get(n);
      if (!b) continue;
      stridedCopy(p, b);
      b.dispose();
    }
    this.backup = null;
  }

  /** The averages as `ema.<parameter name>` (the EMA's own tensors: do not dispose them). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.shadow].map(([n, t]) => [`ema.${n}`, t]));
  }

  /** Throws unless loadStateDict(state) would take it: every parameter's average, of its shape, and nothing else. */
  checkStateDict(state: Record<string, Tensor>): void {
    if (state === null || typeof state !== 'object') throw new KilnError('INVALID_ARGUMENT', `EMA.loadStateDict: needs an object of tensors, got ${state === null ? 'null' : typeof state}`);
    for (const k of Object.keys(state))
      if (k.startsWith('ema.') && !this.shadow.has(k.slice(4))) throw new KilnError('INVALID_ARGUMENT', `EMA.loadStateDict: '${k}' names no parameter of the model`);
    for (const [n, s] of this.shadow) {
      const t = state[`ema.${n}`] as unknown;
      if (!(t instanceof Tensor)) throw new KilnError('INVALID_ARGUMENT', `EMA.loadStateDict: no tensor for 'ema.${n}'`);
      t.assertLive(`EMA.loadStateDict: 'ema.${n}'`);
      if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))
        throw new KilnError('SHAPE_MISMATCH', `EMA.loadStateDict: 'ema.${n}' is ${shapeStr(t.shape)}, the parameter ${shapeStr(s.shape)}`);
      if (t.device !== s.device) throw new KilnError('DEVICE_MISMATCH', `EMA.loadStateDict: 'ema.${n}' is on ${t.device}, the averages on ${s.device}`);
    }
  }

  /** Restores averages saved by stateDict() (checkStateDict's checks first: a refused state changes nothing). */
  loadStateDict(state: Record<string, Tensor>): void {
    this.checkStateDict(state);
    for (const [n, s] of this.shadow) {
      const t = state[`ema.${n}`];
      if (t.dtype === s.dtype) stridedCopy(s, t);
      else {
        const c = noGrad(() => t.to(s.dtype));
        stridedCopy(s, c);
        c.dispose();
      }
    }
  }
}
