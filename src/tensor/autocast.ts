// Automatic mixed precision (torch.autocast for CUDA). Inside `autocast({ dtype: 'bfloat16' }, fn)`
// (or a `using autocastScope(...)` block), matmul, linear and scaledDotProductAttention on CUDA
// round their float32 operands to bfloat16 (or float16), run the half-precision kernel with float32
// accumulation and return float32, so every other op keeps running in float32 and parameters stay
// float32 master weights: the casts are differentiable, and gradients arrive in float32.
// Unlike PyTorch, the autocast ops return float32 rather than the half type (the value is the same
// as PyTorch's half result promoted by the next op; kiln's other kernels need no half variants).
// On the CPU autocast changes nothing (like torch.autocast('cuda') leaves CPU tensors alone).
// float16 trains without loss scaling here, so small gradients can underflow: prefer bfloat16.
import { KilnError } from '../errors.js';
import type { Device, HalfDType } from './dtype.js';

export interface AutocastOptions {
  /** The low-precision dtype (default 'bfloat16'). */
  dtype?: HalfDType;
  /** false runs `fn` with autocast off (default true). */
  enabled?: boolean;
}

let current: HalfDType | null = null;

function resolve(op: string, o: AutocastOptions | undefined): HalfDType | null {
  if (o !== undefined && (o === null || typeof o !== 'object'))
    throw new KilnError('INVALID_ARGUMENT', `${op}: options must be an object`);
  const dtype = o?.dtype ?? 'bfloat16';
  if (dtype !== 'bfloat16' && dtype !== 'float16')
    throw new KilnError('INVALID_ARGUMENT', `${op}: dtype must be 'bfloat16' or 'float16', got '${String(dtype)}'`);
  return o?.enabled === false ? null : dtype;
}

/**
 * Runs `fn` under autocast and returns its result. Async functions are refused: the setting is
 * process-wide and must not span an await (other work would run under it).
 */
export function autocast<T>(opts: AutocastOptions, fn: () => T): T {
  if (typeof fn !== 'function') throw new KilnError('INVALID_ARGUMENT', 'autocast: needs a function to run');
  const prev = current;
  current = resolve('autocast', opts);
  let result: T;
  try {
    result = fn();
  } finally {
    current = prev;
  }
  if (result instanceof Promise)
    throw new KilnError('INVALID_ARGUMENT', 'autocast: the function returned a Promise; autocast cannot span an await');
  return result;
}

/** `using _ = kiln.autocastScope({ dtype: 'bfloat16' })`: autocast until the end of the block. */
export function autocastScope(opts: AutocastOptions = {}): Disposable {
  const prev = current;
  current = resolve('autocastScope', opts);
  let open = true;
  return {
    [Symbol.dispose]() {
      if (!open) return;
      open = false;
      current = prev;
    },
  };
}

/** The dtype autocast ops on `device` compute in, or null when autocast is off there. */
export function autocastDType(device: Device): HalfDType | null {
  return device === 'cuda' ? current : null;
}

/** The current setting (for ops whose backward must run under their forward's setting). */
export function autocastState(): HalfDType | null {
  return current;
}

/** Runs fn with the autocast setting `state` (a value from autocastState). */
export function withAutocastState<T>(state: HalfDType | null, fn: () => T): T {
  const prev = current;
  current = state;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
