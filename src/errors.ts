// Typed errors: every failure reachable from JavaScript is a KilnError with a stable code and a
// message that names the op and the shapes involved.
export type KilnErrorCode =
  | 'SHAPE_MISMATCH'
  | 'DTYPE_MISMATCH'
  | 'DEVICE_MISMATCH'
  | 'DEVICE_UNAVAILABLE'
  | 'OUT_OF_MEMORY'
  | 'CUDA_ERROR'
  | 'INVALID_ARGUMENT'
  | 'INDEX_OUT_OF_RANGE'
  | 'DISPOSED'
  | 'NOT_DIFFERENTIABLE'
  | 'NON_FINITE'
  | 'CHECKPOINT_CORRUPT'
  | 'INTERNAL';

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  constructor(code: KilnErrorCode | string, message: string) {
    super(message);
    this.name = 'KilnError';
    this.code = code as KilnErrorCode;
  }
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function fail(code: KilnErrorCode, message: string): never {
  throw new KilnError(code, message);
}
