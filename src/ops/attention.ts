// Fused scaled-dot-product attention (FlashAttention-2 algorithm): one kernel call forward, one
// backward; the Tq x Tk score matrix is never stored, only the per-row logsumexp.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { isGradEnabled, record } from '../tensor/autograd.js';
import { autocastDType } from '../tensor/autocast.js';
import { isHalf } from '../tensor/dtype.js';
import { reserve } from '../tensor/random.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { ne, toDType } from './elementwise.js';
import { arg, checkTensor, contig, needDType, needSavedLive, releaseMade, sameDevice } from './util.js';

type B = ArrayBuffer | undefined;
const NA = N as unknown as {
  attentionForward(q: B, k: B, v: B, out: B, lse: B, mask: B): void;
  attentionBackward(q: B, k: B, v: B, out: B, dout: B, lse: B, mask: B, dq: B, dk: B, dv: B): void;
};

const OP = 'scaledDotProductAttention';
/** Largest head dim on the CPU (the tiles are 64 x D); CUDA supports 32, 64 and 128. */
export const MAX_HEAD_DIM_CPU = 512;
const CUDA_HEAD_DIMS = [32, 64, 128];

export interface AttentionOptions {
  /**
   * Causal masking, aligned to the bottom-right: query i sees key j iff j <= i + (Tk - Tq), so
   * with a KV cache (Tq < Tk) the last query sees every key. Equal to the usual triangle when
   * Tq == Tk. (PyTorch 1.13's private SDPA aligns to the top-left instead; FlashAttention-2 and
   * PyTorch 2's causal_lower_right align like kiln.) Rows that see no key output 0.
   */
  causal?: boolean;
  /** Multiplies q k^T; default 1/sqrt(D). */
  scale?: number;
  /** int32 [B]: batch b attends to keys [0, len_b) only (values are clamped to [0, Tk]). */
  keyPaddingLengths?: Tensor;
  /** [B, Tk], int32 or float: key j of batch b is attended to iff the mask is nonzero. */
  keyMask?: Tensor;
  /** Dropout probability on the attention weights, in [0, 1); the mask comes from the Philox stream. */
  dropout?: number;
}

function checkShapes(q: Tensor, k: Tensor, v: Tensor): void {
  for (const [t, name] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    checkTensor(OP, t, name);
    if (t.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', `${OP}: ${name} must be a float tensor, got int32 ${shapeStr(t.shape)}`);
    if (t.ndim !== 4) throw new KilnError('SHAPE_MISMATCH', `${OP}: ${name} must be [B, H, T, D], got ${shapeStr(t.shape)}`);
  }
  sameDevice(OP, q, k);
  sameDevice(OP, q, v);
  needDType(OP, k, q.dtype, 'k');
  needDType(OP, v, q.dtype, 'v');
  const [Bq, Hq, , Dq] = q.shape;
  const ok = k.shape[0] === Bq && k.shape[1] === Hq && k.shape[3] === Dq && v.shape.every((d, i) => d === k.shape[i]);
  if (!ok)
    throw new KilnError('SHAPE_MISMATCH',
      `${OP}: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} (want [B, H, Tq, D], [B, H, Tk, D], [B, H, Tk, D])`);
  // The kernels index in int64 up to 2^46 elements per operand (native/attention.cc).
  if (Bq * Hq * Math.max(q.shape[2], k.shape[2]) * Dq > 2 ** 46)
    throw new KilnError('INVALID_ARGUMENT', `${OP}: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)} are too large (over 2^46 elements)`);
  if (fusedAttentionSupports(q)) return;
  if (q.device === 'cpu')
    throw new KilnError('INVALID_ARGUMENT', `${OP}: head dim D = ${Dq} in q ${shapeStr(q.shape)} is larger than ${MAX_HEAD_DIM_CPU}`);
  if (q.dtype === 'float64')
    throw new KilnError('DTYPE_MISMATCH', `${OP}: the CUDA kernel takes float32, float16 or bfloat16, got float64 q ${shapeStr(q.shape)}`);
  throw new KilnError('INVALID_ARGUMENT', `${OP}: the CUDA kernel supports head dims ${CUDA_HEAD_DIMS.join(', ')}, got D = ${Dq} in q ${shapeStr(q.shape)}`);
}

/** Whether the fused kernels take q [B, H, T, D] (its device, dtype and head dim); the op refuses it otherwise. */
export function fusedAttentionSupports(q: Tensor): boolean {
  const D = q.shape[3];
  return q.device === 'cpu' ? D <= MAX_HEAD_DIM_CPU : q.dtype !== 'float64' && CUDA_HEAD_DIMS.includes(D);
}

/** The mask operand as int32 (kind 1: lengths [B], kind 2: key mask [B, Tk]); caller disposes `owned`. */
function maskOperand(q: Tensor, k: Tensor, opts: AttentionOptions): { kind: 0 | 1 | 2; t: Tensor | null; owned: boolean } {
  const { keyPaddingLengths: lens, keyMask: mask } = opts;
  if (lens && mask) throw new KilnError('INVALID_ARGUMENT', `${OP}: give keyPaddingLengths or keyMask, not both (q ${shapeStr(q.shape)})`);
  const B = q.shape[0], Tk = k.shape[2];
  if (lens) {
    checkTensor(OP, lens, 'keyPaddingLengths');
    sameDevice(OP, q, lens);
    needDType(OP, lens, 'int32', 'keyPaddingLengths');
    if (lens.ndim !== 1 || lens.shape[0] !== B)
      throw new KilnError('SHAPE_MISMATCH', `${OP}: keyPaddingLengths ${shapeStr(lens.shape)} for q ${shapeStr(q.shape)} (want [${B}])`);
    const t = contig(lens);
    return { kind: 1, t, owned: t !== lens };
  }
  if (mask) {
    checkTensor(OP, mask, 'keyMask');
    sameDevice(OP, q, mask);
    if (mask.ndim !== 2 || mask.shape[0] !== B || mask.shape[1] !== Tk)
      throw new KilnError('SHAPE_MISMATCH', `${OP}: keyMask ${shapeStr(mask.shape)} for k ${shapeStr(k.shape)} (want [${B}, ${Tk}])`);
    const t = mask.dtype === 'int32' ? contig(mask) : ne(mask.detach(), 0);
    return { kind: 2, t, owned: t !== mask };
  }
  return { kind: 0, t: null, owned: false };
}

/**
 * softmax(scale * q k^T + mask) v over q [B, H, Tq, D] and k, v [B, H, Tk, D] -> [B, H, Tq, D],
 * with optional causal masking, key padding and dropout; differentiable in q, k and v.
 * dtypes: float32 and float64 on the CPU, float32, float16 and bfloat16 on CUDA (half inputs use
 * tensor cores with float32 softmax and accumulation; output and gradients in the input dtype).
 * float16 / bfloat16 on the CPU run the float32 kernel between casts (same result dtype). Under
 * kiln.autocast, float32 inputs on CUDA run the half kernel and the output is cast back to float32.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkShapes(q, k, v);
  opts ??= {};
  if (typeof opts !== 'object')
    throw new KilnError('INVALID_ARGUMENT', `${OP}: options must be an object, got ${typeof opts} (q ${shapeStr(q.shape)})`);
  const low = q.dtype === 'float32' ? autocastDType(q.device) : null;
  const via = low ?? (q.device === 'cpu' && isHalf(q.dtype) ? 'float32' : null);
  if (via) {
    const lq = toDType(q, via), lk = toDType(k, via), lv = toDType(v, via);
    const o = attentionKernel(lq, lk, lv, opts);
    return releaseMade(toDType(o, q.dtype), [lq, lk, lv, o], [q, k, v]);
  }
  return attentionKernel(q, k, v, opts);
}

/**
 * Elements between consecutive (b, h) heads of t [B, H, T, D] when every head is a row-major [T, D]
 * block (rows D apart) and the heads lie one stride apart, as in a narrowed view of a KV cache's
 * [B, H, capacity, D] buffer (stride capacity * D); null otherwise. A dense t gives T * D.
 */
export function headStride(t: Tensor): number | null {
  const [B, H, T, D] = t.shape, [sb, sh, st, sd] = t.strides;
  if ((D > 1 && sd !== 1) || (T > 1 && st !== D)) return null;
  const s = H > 1 ? sh : B > 1 ? sb : T * D;
  return (B > 1 && sb !== H * s) || s < 0 ? null : s;
}

/**
 * k or v as the kernel reads it: on the CPU a view with one head stride is passed as is (the
 * kernel walks its heads; nothing is copied), anything else as a contiguous copy. The CUDA kernels
 * take dense heads only. Caller disposes it when it is not `t`.
 */
function keysOperand(t: Tensor): Tensor {
  return t.device === 'cpu' && headStride(t) !== null ? t : contig(t);
}

function attentionKernel(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const shapes = `q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}`;
  const scale = opts.scale ?? (D > 0 ? 1 / Math.sqrt(D) : 1);
  // The kernels compute in float32 unless q is float64: a scale past float32's range would be +-inf there.
  const maxScale = q.dtype === 'float64' ? Number.MAX_VALUE : 3.4028234663852886e38;
  if (typeof scale !== 'number' || !(Math.abs(scale) <= maxScale))
    throw new KilnError('INVALID_ARGUMENT', `${OP}: scale must be a finite ${q.dtype === 'float64' ? 'float64' : 'float32'} number, got ${String(scale)} (${shapes})`);
  const p = opts.dropout ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p < 1))
    throw new KilnError('INVALID_ARGUMENT', `${OP}: dropout must be a number in [0, 1), got ${String(p)} (${shapes})`);
  const mask = maskOperand(q, k, opts);
  if (D === 0) {  // nothing to attend with: empty output and gradients, no kernel
    if (mask.owned) mask.t!.dispose();
    const out = empty([B, H, Tq, 0], q.dtype, q.device);
    if (!isGradEnabled() || !(q.requiresGrad || k.requiresGrad || v.requiresGrad)) return out;
    return record(out, OP, [q, k, v], () => [empty(q.shape, q.dtype, q.device), empty(k.shape, q.dtype, q.device), empty(v.shape, q.dtype, q.device)]);
  }
  const header = () => {
    A[0] = B; A[1] = H; A[2] = Tq; A[3] = Tk; A[4] = D; A[5] = scale; A[6] = opts.causal ? 1 : 0;
    A[7] = mask.kind; A[8] = p; A[9] = seedLo; A[10] = seedHi; A[11] = offset;
    A[42] = kStride; A[43] = vStride;
  };
  const qc = contig(q), kc = keysOperand(k), vc = keysOperand(v);
  const kStride = headStride(kc)!, vStride = headStride(vc)!;  // Tk * D unless a view of a bigger buffer
  const out = empty([B, H, Tq, D], q.dtype, q.device);
  const lse = empty([B, H, Tq], q.device === 'cuda' ? 'float32' : q.dtype, q.device);  // float32 on CUDA for every dtype
  // One Philox word per score element, whether or not it is masked, so the mask is layout-free
  // (reserved once every check and allocation has passed, so a refused call leaves the stream alone).
  const [seedLo, seedHi, offset] = p > 0 ? reserve(B * H * Tq * Tk) : [0, 0, 0];
  header();
  NA.attentionForward(arg(12, qc), arg(15, kc), arg(18, vc), arg(21, out), arg(24, lse), mask.t ? arg(27, mask.t) : undefined);
  const release = () => {
    for (const [c, t] of [[qc, q], [kc, k], [vc, v]]) if (c !== t) c.dispose();
    if (mask.owned) mask.t!.dispose();
    lse.dispose();
  };
  if (!isGradEnabled() || !(q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    release();
    return out;
  }
  return record(out, OP, [q, k, v], (g) => {
    needSavedLive(`${OP} backward`, [[qc, 'q'], [kc, 'k'], [vc, 'v']]);
    const gc = contig(g);
    const dq = empty([B, H, Tq, D], q.dtype, q.device);
    const dk = empty([B, H, Tk, D], q.dtype, q.device);
    const dv = empty([B, H, Tk, D], q.dtype, q.device);
    header();
    NA.attentionBackward(arg(12, qc), arg(15, kc), arg(18, vc), arg(21, out), arg(24, gc), arg(27, lse),
      mask.t ? arg(30, mask.t) : undefined, arg(33, dq), arg(36, dk), arg(39, dv));
    if (gc !== g) gc.dispose();
    return [dq, dk, dv];
  });
}
