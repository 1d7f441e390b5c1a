// Devices: `cpu` always; `cuda` where the addon was built with CUDA and a GPU is present.
import { KilnError } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { itemSize, type Device } from '../tensor/dtype.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { arg, contig } from './util.js';

let cudaInfo: ReturnType<typeof N.cudaInfo> | null = null;
/** How float32 matmuls use the tensor cores on CUDA (torch.set_float32_matmul_precision's names). */
export type MatmulPrecision = 'highest' | 'high';
let matmulPrecision: MatmulPrecision = 'highest';
/** The native gemm's precision slot: 0 'highest' (3xTF32, float32 accuracy), 1 'high' (TF32). */
export const matmulPrecisionCode = (): number => (matmulPrecision === 'high' ? 1 : 0);
function info() {
  return (cudaInfo ??= N.cudaInfo());
}

export const cuda = {
  /** True when kiln was built with CUDA and a GPU is usable. */
  isAvailable: (): boolean => info().available,
  isCompiled: (): boolean => info().compiled,
  deviceCount: (): number => info().deviceCount,
  deviceName: (i = 0): string => info().names[i] ?? '',
  /** Returns cached device (and host) blocks to the system. */
  emptyCache: (): void => N.emptyCache(),
  synchronize: (): void => {
    if (info().available) N.cudaSynchronize();
  },
  /** float32 matmuls on CUDA: 'highest' (default; 3xTF32, float32 accuracy) or 'high' (TF32, ~1e-3 relative). */
  setMatmulPrecision: (p: MatmulPrecision): void => {
    if (p !== 'highest' && p !== 'high')
      throw new KilnError('INVALID_ARGUMENT', `cuda.setMatmulPrecision: expected 'highest' or 'high', got '${String(p)}'`);
    matmulPrecision = p;
  },
  getMatmulPrecision: (): MatmulPrecision => matmulPrecision,
};

export function checkDevice(op: string, d: unknown): Device {
  if (d === 'cpu') return 'cpu';
  if (d === 'cuda' || d === 'cuda:0') {
    if (!info().available)
      throw new KilnError('DEVICE_UNAVAILABLE', `${op}: CUDA is not available (${info().compiled ? 'no usable GPU' : 'kiln was built without CUDA'})`);
    return 'cuda';
  }
  throw new KilnError('INVALID_ARGUMENT', `${op}: unknown device '${String(d)}' (use 'cpu' or 'cuda')`);
}

/** Copies t to `device` (the gradient flows back to the source device). */
export function toDevice(t: Tensor, device: Device): Tensor {
  const d = checkDevice('to', device);
  if (t.device === d) return t;
  const src = contig(t);
  const out = empty(t.shape.slice(), t.dtype, d);
  const db = arg(0, out);
  const sb = arg(3, src);
  A[6] = t.size * itemSize[t.dtype];
  N.copy(db, sb);
  if (src !== t) src.dispose();
  const from = t.device;
  return record(out, 'to', [t], (g) => [toDevice(g, from)]);
}
