// Initialisers. All write into the existing parameter memory (no autograd), so optimizers and
// anything else holding the tensors keep seeing them.
import { KilnError } from '../errors.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { fillInPlace, rand, randn } from '../ops/creation.js';
import { Embedding, LayerNorm, Linear } from './layers.js';
import { Module, copyInto } from './module.js';

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  noGrad(() => {
    const r = randn(t.shape.slice(), { dtype: t.dtype, device: t.device, mean, std });
    copyInto(t, r);
    r.dispose();
  });
  return t;
}

export function uniform_(t: Tensor, low = 0, high = 1): Tensor {
  noGrad(() => {
    const r = rand(t.shape.slice(), { dtype: t.dtype, device: t.device, low, high });
    copyInto(t, r);
    r.dispose();
  });
  return t;
}

export function constant_(t: Tensor, value: number): Tensor {
  if (!t.isContiguous()) throw new KilnError('INVALID_ARGUMENT', 'constant_: needs a contiguous tensor');
  fillInPlace(t, value);
  return t;
}

/**
 * GPT-2 initialisation: weights of Linear and Embedding layers ~ N(0, std), biases 0, layer norms
 * 1 and 0, and residual output projections (names ending in `cProj.weight`) ~ N(0, std / sqrt(2 nLayer)).
 */
export function gpt2Init(model: Module, opts: { std?: number; nLayer?: number } = {}): void {
  const std = opts.std ?? 0.02;
  const nLayer = opts.nLayer ?? (model as unknown as { config?: { nLayer?: number } }).config?.nLayer ?? 1;
  const seen = new Set<Tensor>();
  for (const [, m] of model.namedModules()) {
    if (m instanceof Linear) {
      if (!seen.has(m.weight)) normal_(m.weight, 0, std);
      if (m.bias) constant_(m.bias, 0);
    } else if (m instanceof Embedding) {
      if (!seen.has(m.weight)) normal_(m.weight, 0, std);
    } else if (m instanceof LayerNorm) {
      if (m.weight) constant_(m.weight, 1);
      if (m.bias) constant_(m.bias, 0);
    }
    // A tied weight (the LM head) is initialised once, by the first module that owns it.
    if (m instanceof Linear || m instanceof Embedding) seen.add(m.weight);
  }
  for (const [name, p] of model.namedParameters())
    if (name.endsWith('cProj.weight')) normal_(p, 0, std / Math.sqrt(2 * nLayer));
}

export interface ParamStats {
  mean: number;
  std: number;
}

/** Mean and (population) standard deviation of every parameter, by name. */
export function parameterStats(model: Module): Record<string, ParamStats> {
  const out: Record<string, ParamStats> = {};
  for (const [name, p] of model.namedParameters()) {
    const v = p.dataSync();
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i];
    const mean = s / Math.max(v.length, 1);
    let q = 0;
    for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
    out[name] = { mean, std: Math.sqrt(q / Math.max(v.length, 1)) };
  }
  return out;
}

/**
 * Re-initialises each parameter as N(mean, std) from per-parameter statistics (e.g. those of a
 * pretrained model). Names absent from `stats` are left alone unless `strict`.
 */
export function reinitFromStats(model: Module, stats: Record<string, ParamStats>, strict = false): void {
  const params = model.namedParameters();
  if (strict) {
    const missing = params.filter(([n]) => !(n in stats)).map(([n]) => n);
    if (missing.length) throw new KilnError('INVALID_ARGUMENT', `reinitFromStats: no statistics for ${missing.join(', ')}`);
  }
  for (const [name, p] of params) {
    const s = stats[name];
    if (!s) continue;
    if (!Number.isFinite(s.mean) || !(s.std >= 0))
      throw new KilnError('INVALID_ARGUMENT', `reinitFromStats: bad statistics for ${name}: mean ${s.mean}, std ${s.std}`);
    if (s.std === 0) constant_(p, s.mean);
    else normal_(p, s.mean, s.std);
  }
}
