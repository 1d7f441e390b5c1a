// Gradient check: analytic gradients from backward() against central finite differences, in
// float64 (inputs are promoted), with stated tolerances.
import { KilnError } from './errors.js';
import { noGrad } from './tensor/autograd.js';
import { Tensor } from './tensor/tensor.js';
import { fromTyped } from './ops/creation.js';
import { tidy } from './tensor/storage.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  worst?: { input: number; index: number; analytic: number; numeric: number };
}

/**
 * f maps float64 inputs to a tensor; its sum is differentiated. Returns the comparison; throws a
 * KilnError when `throwOnFail` and the check fails.
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions & { throwOnFail?: boolean } = {}): GradcheckResult {
  const eps = opts.eps ?? 1e-6, atol = opts.atol ?? 1e-5, rtol = opts.rtol ?? 1e-3;
  const values = inputs.map((x) => Float64Array.from(x.dataSync()));
  const make = (vals: Float64Array[], grad: boolean) =>
    vals.map((v, i) => fromTyped(v, inputs[i].shape.slice(), { dtype: 'float64', requiresGrad: grad }));
  // The perturbed inputs are made inside the scope, so each evaluation frees everything it made.
  const total = (vals: Float64Array[]) => tidy(() => f(...make(vals, false)).sum().item());
  const analytic = tidy(() => {
    const xs = make(values, true);
    const y = f(...xs).sum();
    y.backward();
    return xs.map((x) => (x.grad ? Float64Array.from(x.grad.dataSync()) : new Float64Array(x.size)));
  });
  let maxAbsError = 0;
  let ok = true;
  let worst: GradcheckResult['worst'];
  noGrad(() => {
    for (let i = 0; i < values.length; i++) {
      for (let j = 0; j < values[i].length; j++) {
        const orig = values[i][j];
        values[i][j] = orig + eps;
        const up = total(values);
        values[i][j] = orig - eps;
        const down = total(values);
        values[i][j] = orig;
        const numeric = (up - down) / (2 * eps);
        const a = analytic[i][j];
        const err = Math.abs(a - numeric);
        if (err > maxAbsError) {
          maxAbsError = err;
          worst = { input: i, index: j, analytic: a, numeric };
        }
        if (!(err <= atol + rtol * Math.abs(numeric))) ok = false;
      }
    }
  });
  const result = { ok, maxAbsError, worst };
  if (!ok && opts.throwOnFail)
    throw new KilnError('INTERNAL', `gradcheck failed: ${JSON.stringify(worst)}`);
  return result;
}
