// Batched matmul with broadcasting. Transposed views go to the GEMM kernel as transpose flags
// (no copies); a batch of rows times one weight matrix becomes a single large GEMM.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { autocastDType } from '../tensor/autocast.js';
import { isHalf } from '../tensor/dtype.js';
import { broadcastShapes } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { sumTo, toDType } from './elementwise.js';
import { arg, cast, checkTensor, contig, prod, releaseMade, sameDevice } from './util.js';
import { matmulPrecisionCode } from './device.js';
import { fillInPlace } from './creation.js';

interface Operand {
  t: Tensor;
  trans: boolean;
  ld: number;
  batchStride: number;
  owned: boolean;
}

/** Describes the last two dims of t (already broadcast to batch + [rows, cols]) for GEMM. */
function describe(t: Tensor, batch: number[], rows: number, cols: number): Operand {
  const nd = t.ndim;
  // Batch dims must collapse into one stride (or all be broadcast).
  const bShape = t.shape.slice(0, nd - 2);
  const bStrides = t.strides.slice(0, nd - 2);
  let batchStride = 0;
  let ok = true;
  const nb = prod(batch);
  if (nb > 1) {
    const lead = batch.length - bShape.length;
    const full = batch.map((d, i) => (i < lead || bShape[i - lead] === 1 ? 0 : bStrides[i - lead]));
    if (full.every((s) => s === 0)) batchStride = 0;
    else {
      // One stride s over the flattened batch: s is the innermost real (size > 1) batch dim's stride,
      // and every real dim outside it steps s times the batch dims inside it. A broadcast real dim
      // (stride 0) among strided ones does not collapse.
      let inner = 1, s = -1;
      for (let i = batch.length - 1; i >= 0 && ok; i--) {
        if (batch[i] === 1) continue;
        if (s < 0) s = full[i];
        if (s === 0 || full[i] !== s * inner) ok = false;
        inner *= batch[i];
      }
      batchStride = Math.max(s, 0);
    }
  }
  const sr = t.strides[nd - 2], sc = t.strides[nd - 1];
  if (ok && (sc === 1 || cols === 1) && sr >= cols) return { t, trans: false, ld: Math.max(sr, 1), batchStride, owned: false };
  if (ok && (sr === 1 || rows === 1) && sc >= rows) return { t, trans: true, ld: Math.max(sc, 1), batchStride, owned: false };
  const c = contig(t.expand([...batch, rows, cols]));
  return { t: c, trans: false, ld: cols, batchStride: rows * cols, owned: c !== t };
}

function gemm(a: Operand, b: Operand, out: Tensor, batch: number, M: number, Nn: number, K: number): void {
  A[0] = batch;
  A[1] = a.trans ? 1 : 0;
  A[2] = b.trans ? 1 : 0;
  A[3] = M;
  A[4] = Nn;
  A[5] = K;
  A[6] = 1;
  A[7] = 0;
  const ab = arg(8, a.t);
  const bb = arg(11, b.t);
  const ob = arg(14, out);
  A[17] = a.ld;
  A[18] = b.ld;
  A[19] = Nn;
  A[20] = a.batchStride;
  A[21] = b.batchStride;
  A[22] = M * Nn;
  A[23] = matmulPrecisionCode();
  N.gemm(ab, bb, ob);
}

function matmulKernel(a: Tensor, b: Tensor): Tensor {
  const M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1], Nn = b.shape[b.ndim - 1];
  if (b.shape[b.ndim - 2] !== K)
    throw new KilnError('SHAPE_MISMATCH', `matmul: ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}: inner dimensions ${K} and ${b.shape[b.ndim - 2]} differ`);
  let batch: number[];
  try {
    batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    throw new KilnError('SHAPE_MISMATCH', `matmul: ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}: batch dimensions ${shapeStr(a.shape.slice(0, -2))} and ${shapeStr(b.shape.slice(0, -2))} do not broadcast`);
  }
  if (a.device === 'cpu' && isHalf(a.dtype)) {
    // The CPU GEMM has no half kernel: float16 / bfloat16 multiply in float32 and round once.
    const wa = cast(a, 'float32'), wb = cast(b, 'float32');
    const wide = matmulKernel(wa, wb);
    wa.dispose();
    wb.dispose();
    const out = cast(wide, a.dtype);
    wide.dispose();
    return out;
  }
  const out = empty([...batch, M, Nn], a.dtype, a.device);
  if (out.size === 0) return out;
  if (K === 0) return fillInPlace(out, 0);
  // [..., M, K] @ [K, N] with rows that stack contiguously: one GEMM of (batch*M) rows.
  if (b.ndim === 2 && a.ndim > 2 && a.isContiguous()) {
    const rows = prod(batch) * M;
    const da: Operand = { t: a, trans: false, ld: K, batchStride: 0, owned: false };
    const db = describe(b, [], K, Nn);
    gemm(da, db, out, 1, rows, Nn, K);
    if (db.owned) db.t.dispose();
    return out;
  }
  const da = describe(a, batch, M, K);
  const db = describe(b, batch, K, Nn);
  gemm(da, db, out, prod(batch), M, Nn, K);
  if (da.owned) da.t.dispose();
  if (db.owned) db.t.dispose();
  return out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor('matmul', a);
  checkTensor('matmul', b, 'other');
  sameDevice('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new KilnError('SHAPE_MISMATCH', 'matmul: both operands need at least one dimension');
  if (a.dtype === 'int32' || b.dtype === 'int32')
    throw new KilnError('DTYPE_MISMATCH', `matmul: float operands needed, got ${a.dtype} and ${b.dtype}`);
  const low = autocastDType(a.device);
  if (low && a.dtype !== 'float64' && b.dtype !== 'float64' && (a.dtype === 'float32' || b.dtype === 'float32')) {
    // Autocast (src/tensor/autocast.ts): half-precision product, float32 accumulation and result.
    const la = toDType(a, low), lb = toDType(b, low);
    const prodLow = matmul(la, lb);
    const out = toDType(prodLow, 'float32');
    return releaseMade(out, [la, lb, prodLow], [a, b]);
  }
  // What this call makes from its operands (promoted copies, vector views, the product before its
  // added dim is squeezed away) is freed once the result is out, unless a recorded graph reads it.
  const made: Tensor[] = [];
  const given = [a, b];
  if (a.dtype !== b.dtype) {
    const d = a.dtype === 'float64' || b.dtype === 'float64' ? 'float64' : 'float32';
    a = toDType(a, d);
    b = toDType(b, d);
    made.push(a, b);
  }
  // Vectors: [K] is a row on the left and a column on the right; the added dim is removed again.
  if (a.ndim === 1 || b.ndim === 1) {
    const a2 = a.ndim === 1 ? a.reshape([1, a.shape[0]]) : a;
    const b2 = b.ndim === 1 ? b.reshape([b.shape[0], 1]) : b;
    let r = matmul(a2, b2);
    made.push(a2, b2, r);
    if (a.ndim === 1) made.push((r = r.squeeze(-2)));
    if (b.ndim === 1) r = r.squeeze(-1);
    return releaseMade(r, made, given);
  }
  const out = matmulKernel(a, b);
  return releaseMade(record(out, 'matmul', [a, b], (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) ga = sumTo(matmulKernel(g, b.transpose(-1, -2)), a.shape);
    if (b.requiresGrad) {
      if (b.ndim === 2 && a.ndim > 2) {
        const K = a.shape[a.ndim - 1];
        const a2 = a.reshape([-1, K]);
        const g2 = g.reshape([-1, g.shape[g.ndim - 1]]);
        gb = matmulKernel(a2.transpose(0, 1), g2);
      } else gb = sumTo(matmulKernel(a.transpose(-1, -2), g), b.shape);
    }
    return [ga, gb];
  }), made, given);
}
