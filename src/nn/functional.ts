// Functional forms of the layers that need their own gradient: linear (weights stored [out, in]
// like PyTorch, gradients produced contiguous in that layout) and scaled dot-product attention
// (the fused op where it applies, else composed from matmul, a causal mask and softmax).
import { KilnError, shapeStr } from '../errors.js';
import { isGradEnabled, noGrad, record } from '../tensor/autograd.js';
import { autocastState, withAutocastState } from '../tensor/autocast.js';
import { Tensor } from '../tensor/tensor.js';
import { add, maskedFill, mul, rsqrt, square } from '../ops/elementwise.js';
import { matmul } from '../ops/matmul.js';
import { mean, sum } from '../ops/reduce.js';
import { softmax } from '../ops/nn.js';
import { dropout } from '../ops/nn.js';
import { eq, gt } from '../ops/elementwise.js';
import { fusedAttentionSupports, scaledDotProductAttention as fusedAttention } from '../ops/attention.js';
import type { Device } from '../tensor/dtype.js';
import { arange } from '../ops/creation.js';
import { checkTensor } from '../ops/util.js';

/** y = x @ weight^T + bias for x [..., in], weight [out, in], bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const inF = weight.shape[1], outF = weight.shape[0];
  if (weight.ndim !== 2 || x.ndim < 1 || x.shape[x.ndim - 1] !== inF)
    throw new KilnError('SHAPE_MISMATCH', `linear: input ${shapeStr(x.shape)} and weight ${shapeStr(weight.shape)} (want [..., ${inF}] and [out, in])`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF))
    throw new KilnError('SHAPE_MISMATCH', `linear: bias ${shapeStr(bias.shape)} for weight ${shapeStr(weight.shape)}`);
  const lead = x.shape.slice(0, -1);
  const out = noGrad(() => {
    const x2 = x.ndim === 2 ? x : x.reshape([-1, inF]);
    const y = matmul(x2, weight.transpose(0, 1));
    const yb = bias ? add(y, bias) : y;
    if (yb !== y) y.dispose();
    if (x2 !== x) x2.dispose();
    return x.ndim === 2 ? yb : yb.reshape([...lead, outF]);
  });
  if (!isGradEnabled()) return out;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const amp = autocastState();  // the backward products run in the forward's precision
  return record(out, 'linear', inputs, (g) => withAutocastState(amp, () => {
    const g2 = g.ndim === 2 ? g : g.reshape([-1, outF]);
    const dx = x.requiresGrad ? matmul(g, weight) : null;
    let dw: Tensor | null = null;
    if (weight.requiresGrad) {
      const x2 = x.ndim === 2 ? x : x.reshape([-1, inF]);
      dw = matmul(g2.transpose(0, 1), x2);
    }
    const db = bias?.requiresGrad ? sum(g2, 0) : null;
    return bias ? [dx, dw, db] : [dx, dw];
  }));
}

const causalMasks = new Map<string, Tensor>();
/**
 * [T, Tk] int32 mask on `device` (Tk defaults to T), nonzero where key j is in query i's future:
 * j > i + (Tk - T), the fused op's bottom-right alignment (a KV cache's new queries sit after Tk - T
 * cached keys). Cached per device and shape.
 */
export function causalMask(T: number, device: Device = 'cpu', Tk = T): Tensor {
  if (!Number.isInteger(T) || T < 0) throw new KilnError('INVALID_ARGUMENT', `causalMask: T must be a non-negative integer, got ${T}`);
  if (!Number.isInteger(Tk) || Tk < 0) throw new KilnError('INVALID_ARGUMENT', `causalMask: Tk must be a non-negative integer, got ${Tk}`);
  const key = `${device}:${T}:${Tk}`;
  let m = causalMasks.get(key);
  if (!m || m.isDisposed) {
    m = noGrad(() => {
      const i = arange(Tk - T, Tk, 1, { device }).reshape([T, 1]);
      const j = arange(0, Tk, 1, { device }).reshape([1, Tk]);
      return gt(j, i);
    });
    m._kept = true;
    causalMasks.set(key, m);
  }
  return m;
}

export interface AttentionOptions {
  /**
   * Hide each query's future. With Tq != Tk it is aligned bottom-right, as in the fused op: query
   * i sees keys j <= i + (Tk - Tq) (a KV cache's Tq new queries after Tk - Tq cached keys).
   */
  causal?: boolean;
  /** Extra mask broadcastable to [B, H, Tq, Tk]: nonzero positions are hidden. */
  mask?: Tensor | null;
  scale?: number;
  dropout?: number;
  training?: boolean;
}

/**
 * softmax(q k^T * scale + mask) v for q [B, H, Tq, D], k and v [B, H, Tk, D]. Runs the fused
 * FlashAttention-style op (src/ops/attention.ts: no T x T matrix, recomputing backward) whenever
 * the masking fits it (causal and/or a per-key mask); a general [.., Tq, Tk] mask falls back to
 * the composed form.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkTensor('attention', q, 'q');
  checkTensor('attention', k, 'k');
  checkTensor('attention', v, 'v');
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4)
    throw new KilnError('SHAPE_MISMATCH', `attention: q, k, v must be [B, H, T, D], got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
  opts ??= {};
  const D = q.shape[3], Tq = q.shape[2], Tk = k.shape[2];
  const shapes = `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}`;
  const scale = opts.scale ?? (D > 0 ? 1 / Math.sqrt(D) : 1);
  if (typeof scale !== 'number' || !Number.isFinite(scale))
    throw new KilnError('INVALID_ARGUMENT', `attention: scale must be finite, got ${String(scale)} (${shapes})`);
  const drop = opts.dropout ?? 0;
  if (typeof drop !== 'number' || !(drop >= 0 && drop < 1))
    throw new KilnError('INVALID_ARGUMENT', `attention: dropout must be a number in [0, 1), got ${String(drop)} (${shapes})`);
  const p = opts.training ? drop : 0;
  if (opts.mask) {
    // The mask broadcasts to the scores [B, H, Tq, Tk] (right-aligned, as in PyTorch): a [B, Tk]
    // mask is read as [Tq, Tk]; give a per-batch key mask as [B, 1, 1, Tk].
    const m = checkTensor('attention', opts.mask, 'mask').shape, want = [q.shape[0], q.shape[1], Tq, Tk];
    if (m.length > 4 || m.some((d, i) => d !== 1 && d !== want[4 - m.length + i]))
      throw new KilnError('SHAPE_MISMATCH', `attention: mask ${shapeStr(m)} does not broadcast to the scores ${shapeStr(want)} (${shapes})`);
  }
  const keyMask = opts.mask ? perKeyMask(opts.mask, q.shape[0], Tq, Tk) : undefined;
  if (fusedAttentionSupports(q) && keyMask !== null)
    return fusedAttention(q, k, v, { causal: opts.causal, scale, dropout: p, keyMask });
  let s = matmul(q, k.transpose(-2, -1));
  s = s.mul(scale);
  if (opts.causal) s = maskedFill(s, causalMask(Tq, s.device, Tk), -Infinity);
  if (opts.mask) s = maskedFill(s, opts.mask, -Infinity);
  let probs = softmax(s, -1);
  if (p) probs = dropout(probs, p, true);
  return matmul(probs, v);
}

/**
 * A hiding mask of shape [B, 1, 1, Tk] (or [1, ..., 1, Tk]) as the fused op's keyMask [B, Tk]
 * (nonzero = attend); null when the mask depends on the query position.
 */
function perKeyMask(mask: Tensor, B: number, Tq: number, Tk: number): Tensor | null {
  const s = mask.shape;
  const lead = s.slice(0, -1);
  if (s[s.length - 1] !== Tk) return null;
  if (s.length === 4 && (s[0] === B || s[0] === 1) && s[1] === 1 && s[2] === 1) {
    const m = mask.reshape([s[0], Tk]);
    return noGrad(() => eqZero(s[0] === B ? m : m.expand([B, Tk])));
  }
  if (lead.every((d) => d === 1) && Tq >= 1) return noGrad(() => eqZero(mask.reshape([1, Tk]).expand([B, Tk])));
  return null;
}

function eqZero(m: Tensor): Tensor {
  return eq(m, 0);
}

const MACHINE_EPS: Record<string, number> = { float64: 2 ** -52, float32: 2 ** -23, float16: 2 ** -10, bfloat16: 2 ** -7 };

/**
 * RMS normalisation over the trailing dimensions normalizedShape (a number means the last one):
 * x / sqrt(mean(x^2) + eps) * weight (torch.nn.functional.rms_norm). eps defaults to the machine
 * epsilon of x's dtype, as PyTorch. Composed from differentiable ops.
 */
export function rmsNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, eps?: number): Tensor {
  checkTensor('rmsNorm', x);
  if (x.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', `rmsNorm: input must be float, got int32 ${shapeStr(x.shape)}`);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  if (!Array.isArray(ns) || ns.length === 0)
    throw new KilnError('INVALID_ARGUMENT', `rmsNorm: normalizedShape must be a number or a non-empty array, got ${JSON.stringify(normalizedShape)} for ${shapeStr(x.shape)}`);
  const tail = x.shape.slice(x.ndim - ns.length);
  if (ns.length > x.ndim || tail.some((d, i) => d !== ns[i]))
    throw new KilnError('SHAPE_MISMATCH', `rmsNorm: normalized shape ${shapeStr(ns)} does not end ${shapeStr(x.shape)}`);
  if (weight) {
    checkTensor('rmsNorm', weight, 'weight');
    if (weight.device !== x.device) throw new KilnError('DEVICE_MISMATCH', `rmsNorm: input on ${x.device}, weight on ${weight.device}`);
    if (weight.shape.length !== ns.length || weight.shape.some((d, i) => d !== ns[i]))
      throw new KilnError('SHAPE_MISMATCH', `rmsNorm: weight ${shapeStr(weight.shape)} for normalized shape ${shapeStr(ns)}`);
  }
  const e = eps ?? MACHINE_EPS[x.dtype];
  if (typeof e !== 'number' || !(e >= 0)) throw new KilnError('INVALID_ARGUMENT', `rmsNorm: eps must be >= 0, got ${String(eps)}`);
  const axes = ns.map((_, i) => x.ndim - ns.length + i);
  const y = mul(x, rsqrt(add(mean(square(x), axes, true), e)));
  return weight ? mul(y, weight) : y;
}
