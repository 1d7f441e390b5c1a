// Shared argument checks and kernel-call helpers for the ops.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { dtypeCode, itemSize, type DType } from '../tensor/dtype.js';
import { ref } from '../tensor/storage.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { Unary } from '../tensor/opcodes.js';

export function checkTensor(op: string, t: unknown, name = 'input'): Tensor {
  if (!(t instanceof Tensor)) throw new KilnError('INVALID_ARGUMENT', `${op}: ${name} must be a Tensor, got ${typeof t}`);
  t.assertLive(op);
  return t;
}

/**
 * A fused op's backward reads the operands it saved: a DISPOSED KilnError naming the operand and its
 * shape when the caller disposed one before the backward pass (null entries are skipped).
 */
export function needSavedLive(op: string, operands: readonly (readonly [Tensor | null, string])[]): void {
  for (const [x, name] of operands)
    if (x && (x.isDisposed || x.storage.freed)) throw new KilnError('DISPOSED', `${op}: ${name} ${shapeStr(x.shape)} was disposed before the backward pass`);
}

/**
 * Frees what an op made for itself from its arguments (promoted or cast copies, scalar operands,
 * views, intermediate products) once its result `out` is computed, unless a recorded graph still
 * reads them (out has a grad node). Never frees out or the op's own arguments. Returns out.
 */
export function releaseMade(out: Tensor, made: readonly Tensor[], given: readonly unknown[]): Tensor {
  if (!out._node) for (const t of made) if (t !== out && !given.includes(t)) t.dispose();
  return out;
}

export function sameDevice(op: string, a: Tensor, b: Tensor): void {
  if (a.device !== b.device)
    throw new KilnError('DEVICE_MISMATCH', `${op}: tensors on ${a.device} ${shapeStr(a.shape)} and ${b.device} ${shapeStr(b.shape)}`);
}

/** Refuses all but float32 / float64 (ops whose kernels have no float16 / bfloat16 variant). */
export function needFloat(op: string, t: Tensor, name = 'input'): void {
  if (t.dtype !== 'float32' && t.dtype !== 'float64')
    throw new KilnError('DTYPE_MISMATCH', `${op}: ${name} must be float32 or float64, got ${t.dtype} ${shapeStr(t.shape)}`);
}

export function needDType(op: string, t: Tensor, dtype: DType, name = 'input'): void {
  if (t.dtype !== dtype)
    throw new KilnError('DTYPE_MISMATCH', `${op}: ${name} must be ${dtype}, got ${t.dtype} ${shapeStr(t.shape)}`);
}

export function needCpu(op: string, t: Tensor): void {
  if (t.device !== 'cpu')
    throw new KilnError('DEVICE_MISMATCH', `${op}: no CUDA kernel yet for this op (tensor ${shapeStr(t.shape)} is on ${t.device})`);
}

/** Writes a tensor operand (handle, byte offset, dtype) at pos; returns the JS buffer argument. */
export function arg(pos: number, t: Tensor): ArrayBuffer | undefined {
  return ref(pos, t.storage, t.offset * itemSize[t.dtype], dtypeCode[t.dtype]);
}

/** A contiguous tensor with t's values (t itself when it already is). Caller disposes if new. */
export function contig(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  return cast(t, t.dtype);
}

/** A contiguous copy of t converted to dtype (no autograd). */
export function cast(t: Tensor, dtype: DType): Tensor {
  const out = empty([...t.shape], dtype, t.device);
  unaryInto(Unary.Copy, out, t, 0, 0);
  return out;
}

/** Runs a unary kernel from `src` into `out` (same shape, any strides). */
export function unaryInto(op: Unary, out: Tensor, src: Tensor, p0: number, p1: number): void {
  const nd = src.shape.length;
  A[0] = op;
  A[2] = p0;
  A[3] = p1;
  const ob = arg(4, out);
  const sb = arg(7, src);
  if (out.isContiguous() && src.isContiguous()) {
    A[1] = 1;
    A[16] = src.size;
    A[24] = 1;
    A[32] = 1;
  } else {
    A[1] = nd;
    for (let i = 0; i < nd; i++) {
      A[16 + i] = src.shape[i];
      A[24 + i] = out.strides[i];
      A[32 + i] = src.strides[i];
    }
  }
  N.unary(ob, sb);
}

export function prod(xs: readonly number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}
