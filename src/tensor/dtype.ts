export type DType = 'float32' | 'int32' | 'float64';
export type Device = 'cpu' | 'cuda';
export type TypedArray = Float32Array | Int32Array | Float64Array;

export const dtypeCode: Record<DType, number> = { float32: 0, int32: 1, float64: 2 };
export const itemSize: Record<DType, number> = { float32: 4, int32: 4, float64: 8 };
export const deviceCode: Record<Device, number> = { cpu: 0, cuda: 1 };

export function typedArrayFor(dtype: DType, buf: ArrayBuffer, byteOffset: number, length: number): TypedArray {
  if (dtype === 'float32') return new Float32Array(buf, byteOffset, length);
  if (dtype === 'int32') return new Int32Array(buf, byteOffset, length);
  return new Float64Array(buf, byteOffset, length);
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'int32';
}

export function isDType(x: unknown): x is DType {
  return x === 'float32' || x === 'int32' || x === 'float64';
}
