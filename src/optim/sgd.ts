// SGD with momentum, dampening, Nesterov and (L2) weight decay, PyTorch semantics, one fused
// native pass per parameter.
import { KilnError } from '../errors.js';
import { A, N } from '../native.js';
import type { Tensor } from '../tensor/tensor.js';
import { arg } from '../ops/util.js';
import { Optimizer, type GroupOptions, type ParamsArg } from './optimizer.js';

export interface SGDOptions extends GroupOptions {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/** One group's SGD options beyond lr and weight decay. */
function checkSGD(name: string, o: SGDOptions): void {
  if (!(typeof o.momentum === 'number' && o.momentum >= 0 && Number.isFinite(o.momentum)))
    throw new KilnError('INVALID_ARGUMENT', `${name}: momentum must be finite and >= 0, got ${o.momentum}`);
  if (!(typeof o.dampening === 'number' && Number.isFinite(o.dampening)))
    throw new KilnError('INVALID_ARGUMENT', `${name}: dampening must be a finite number, got ${o.dampening}`);
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0))
    throw new KilnError('INVALID_ARGUMENT', `${name}: Nesterov momentum needs momentum > 0 and dampening 0`);
}

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsArg<SGDOptions>, opts: Partial<SGDOptions> & { lr: number }) {
    if (typeof opts !== 'object' || opts === null) throw new KilnError('INVALID_ARGUMENT', 'SGD: needs options with an lr, e.g. { lr: 0.1 }');
    const o: SGDOptions = { lr: opts.lr, momentum: opts.momentum ?? 0, dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0, nesterov: opts.nesterov ?? false };
    super(params, o, 'SGD', checkSGD);
  }

  protected stateNames(o: SGDOptions): string[] {
    return o.momentum > 0 ? ['momentum_buffer'] : [];
  }

  protected update(p: Tensor, g: Tensor, o: SGDOptions, state: Record<string, Tensor>): void {
    const first = o.momentum > 0 && !state.momentum_buffer;
    const buf = o.momentum > 0 ? this.slot(state, 'momentum_buffer', p) : null;
    A[0] = p.size;
    A[1] = o.lr;
    A[2] = o.momentum;
    A[3] = o.dampening;
    A[4] = o.weightDecay;
    A[5] = o.nesterov ? 1 : 0;
    A[6] = first ? 1 : 0;
    A[7] = buf ? 1 : 0;
    const pb = arg(10, p), gb = arg(13, g), bb = buf ? arg(16, buf) : undefined;
    N.sgdStep(pb, gb, bb);
  }
}
