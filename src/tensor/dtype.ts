// Element types. float16 (IEEE binary16) and bfloat16 are 2-byte storage types: JavaScript has no
// typed array for them, so their memory holds the raw 16-bit patterns and every read (dataSync,
// toArray, item) widens them to float32, which is exact. Writes (kiln.tensor, casts) round to
// nearest, ties to even, in the native code shared by the CPU and CUDA (kernels/common/half.h).
export type DType = 'float32' | 'int32' | 'float64' | 'float16' | 'bfloat16';
/** The 2-byte float types. */
export type HalfDType = 'float16' | 'bfloat16';
/** Dtypes with a JavaScript typed array: what host reads return (half dtypes read as float32). */
export type HostDType = 'float32' | 'int32' | 'float64';
export type Device = 'cpu' | 'cuda';
export type TypedArray = Float32Array | Int32Array | Float64Array;

// Codes shared with native/context.h (dtype_arg) and cpu::DType in kernels/cpu/elementwise.h.
export const dtypeCode: Record<DType, number> = { float32: 0, int32: 1, float64: 2, float16: 3, bfloat16: 4 };
export const itemSize: Record<DType, number> = { float32: 4, int32: 4, float64: 8, float16: 2, bfloat16: 2 };
export const deviceCode: Record<Device, number> = { cpu: 0, cuda: 1 };

/** A typed-array view of host memory holding `dtype` elements (half dtypes have none: see hostDType). */
export function typedArrayFor(dtype: HostDType, buf: ArrayBuffer, byteOffset: number, length: number): TypedArray {
  if (dtype === 'float32') return new Float32Array(buf, byteOffset, length);
  if (dtype === 'int32') return new Int32Array(buf, byteOffset, length);
  return new Float64Array(buf, byteOffset, length);
}

/** The dtype whose typed array host reads of `dtype` return: float32 for the half dtypes. */
export function hostDType(dtype: DType): HostDType {
  return dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype;
}

export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype === 'float16' || dtype === 'bfloat16';
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'int32';
}

export function isDType(x: unknown): x is DType {
  return x === 'float32' || x === 'int32' || x === 'float64' || x === 'float16' || x === 'bfloat16';
}
