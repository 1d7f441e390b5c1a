// Adam (L2 weight decay folded into the gradient) and AdamW (decoupled weight decay), PyTorch
// semantics. Each parameter is one fused native pass that updates the parameter, m and v in place.
import { KilnError } from '../errors.js';
import { A, N } from '../native.js';
import type { Tensor } from '../tensor/tensor.js';
import { arg } from '../ops/util.js';
import { Optimizer, type GroupOptions, type ParamsArg } from './optimizer.js';

export interface AdamOptions extends GroupOptions {
  betas: [number, number];
  eps: number;
}

type AdamArgs = Partial<AdamOptions> & { lr?: number };

/** One group's Adam options beyond lr and weight decay. */
function checkAdam(name: string, o: AdamOptions): void {
  if (!Array.isArray(o.betas) || o.betas.length !== 2)
    throw new KilnError('INVALID_ARGUMENT', `${name}: betas must be a pair [beta1, beta2], got ${JSON.stringify(o.betas)}`);
  const [b1, b2] = o.betas;
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new KilnError('INVALID_ARGUMENT', `${name}: betas must be in [0, 1), got [${b1}, ${b2}]`);
  if (!(o.eps >= 0 && Number.isFinite(o.eps))) throw new KilnError('INVALID_ARGUMENT', `${name}: eps must be finite and >= 0, got ${o.eps}`);
}

class AdamBase extends Optimizer<AdamOptions> {
  constructor(params: ParamsArg<AdamOptions>, opts: AdamArgs, private readonly decoupled: boolean, name: string) {
    opts ??= {};
    const o: AdamOptions = { lr: opts.lr ?? 1e-3, betas: opts.betas ?? [0.9, 0.999], eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? (decoupled ? 1e-2 : 0) };
    super(params, o, name, checkAdam);
  }

  protected stateNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected update(p: Tensor, g: Tensor, o: AdamOptions, state: Record<string, Tensor>, t: number): void {
    const m = this.slot(state, 'exp_avg', p), v = this.slot(state, 'exp_avg_sq', p);
    // Bias correction by the parameter's own update count, as torch: a parameter whose first
    // gradient comes late starts its correction then.
    const [b1, b2] = o.betas;
    A[0] = p.size;
    A[1] = o.lr;
    A[2] = b1;
    A[3] = b2;
    A[4] = o.eps;
    A[5] = o.weightDecay;
    A[6] = 1 - Math.pow(b1, t);
    A[7] = 1 - Math.pow(b2, t);
    A[8] = this.decoupled ? 1 : 0;
    const pb = arg(10, p), gb = arg(13, g), mb = arg(16, m), vb = arg(19, v);
    N.adamStep(pb, gb, mb, vb);
  }
}

export class Adam extends AdamBase {
  constructor(params: ParamsArg<AdamOptions>, opts: AdamArgs = {}) {
    super(params, opts, false, 'Adam');
  }
}

export class AdamW extends AdamBase {
  constructor(params: ParamsArg<AdamOptions>, opts: AdamArgs = {}) {
    super(params, opts, true, 'AdamW');
  }
}
