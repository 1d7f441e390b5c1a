// checkOp: the one op-test helper (tinygrad's helper_test_op, kiln style). An op lambda over kiln
// tensors runs on every device present against a plain TypeScript reference (test/helpers/reference.ts):
// forward with per-dtype tolerances; backward checked against float64 finite differences
// (kiln.gradcheck) and float32 backward against the float64 analytic gradient.
import test, { type ExecutionContext } from 'ava';
import * as kiln from '../../src/index.js';
import type { Tensor, DType, Device } from '../../src/index.js';
import { numel, type Ref } from './reference.js';

/** A differentiable float input: a shape (standard normal values), a range, or fixed values. */
export type FloatInput = number[] | { shape: number[]; low?: number; high?: number; values?: number[]; noGrad?: boolean };
/** A non-differentiable int32 input (indices, targets, masks): values in [lo, hi), or fixed values. */
export type IntInput = { int: [number, number]; shape: number[] } | { ints: number[]; shape: number[] };
export type InputSpec = FloatInput | IntInput;

export interface Tol {
  atol: number;
  rtol: number;
}
export interface CheckOpOptions {
  /** Check gradients (default: true when some input is a float). */
  grad?: boolean;
  /** Dtypes to run the float inputs in (default float32 and float64). 'int32' rounds float inputs to integers. */
  dtypes?: DType[];
  /** Forward tolerance overrides per dtype. */
  tol?: Partial<Record<DType, Tol>>;
  /** float32-backward vs float64-analytic tolerance (default atol 1e-4, rtol 1e-3). */
  gradTol?: Tol;
  /** Finite-difference tolerance for gradcheck (default atol 1e-5, rtol 1e-3). */
  gradcheckTol?: Tol;
  /** Expected output dtype for a given input dtype (default: the same). */
  outDtype?: (input: DType) => DType;
}

export const FWD_TOL: Record<DType, Tol> = {
  float32: { atol: 1e-5, rtol: 1e-4 },
  float64: { atol: 1e-10, rtol: 1e-9 },
  int32: { atol: 0, rtol: 0 },
  // Half outputs are float32 results rounded once: half an ulp (2^-11, 2^-8) relative.
  float16: { atol: 1e-4, rtol: 1e-3 },
  bfloat16: { atol: 1e-3, rtol: 8e-3 },
};

// ---------------------------------------------------------------- deterministic inputs

/** mulberry32: a tiny seeded PRNG so every test sees the same inputs on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Standard normal values (Box-Muller), rounded to float32 so every dtype sees identical inputs. */
export function normals(rng: () => number, n: number): number[] {
  return Array.from({ length: n }, () => Math.fround(Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng())));
}

const isInt = (s: InputSpec): s is IntInput => !Array.isArray(s) && ('int' in s || 'ints' in s);
const shapeOf = (s: InputSpec) => (Array.isArray(s) ? s : s.shape);

function makeValues(spec: InputSpec, rng: () => number): number[] {
  const n = numel(shapeOf(spec));
  if (Array.isArray(spec)) return normals(rng, n);
  if (isInt(spec)) {
    if ('ints' in spec) return spec.ints.slice();
    const [lo, hi] = spec.int;
    return Array.from({ length: n }, () => lo + Math.floor(rng() * (hi - lo)));
  }
  if (spec.values) return spec.values.map(Math.fround);
  const lo = spec.low ?? -1, hi = spec.high ?? 1;
  return Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * rng()));
}

// ---------------------------------------------------------------- comparison

export function assertClose(
  t: ExecutionContext,
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tol,
): void {
  t.is(got.length, want.length, `${what}: ${got.length} values, want ${want.length}`);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) ? Number.isNaN(g) : g === w) continue;
    const excess = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0)
    t.fail(`${what}: element ${worst} is ${got[worst]}, want ${want[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  else t.pass();
}

const refOf = (x: Tensor): Ref => ({ data: Float64Array.from(x.dataSync()), shape: x.shape.slice() });

// ---------------------------------------------------------------- devices

export const cudaReason = (): string =>
  kiln.cuda.isCompiled() ? 'CUDA is compiled in but no usable GPU is present' : 'kiln was built without CUDA';

let cudaSkipNoted = false;
/**
 * Registers `title [cpu]` and, with a GPU, `title [cuda]`. Without one, each test file shows a single
 * skipped entry that says why its cuda variants did not run.
 */
export function perDevice(title: string, body: (t: ExecutionContext, device: Device) => void): void {
  test(`${title} [cpu]`, (t) => body(t, 'cpu'));
  if (kiln.cuda.isAvailable()) test(`${title} [cuda]`, (t) => body(t, 'cuda'));
  else if (!cudaSkipNoted) {
    cudaSkipNoted = true;
    test.skip(`every [cuda] variant in this file (skipped: ${cudaReason()})`, () => {});
  }
}

// ---------------------------------------------------------------- the helper

type OpFn = (...xs: Tensor[]) => Tensor;
type RefFn = (...xs: Ref[]) => Ref;

/**
 * One op test: `checkOp('add broadcast', [[3, 1], [4]], (a, b) => a.add(b), R.add)`.
 * Float inputs are differentiable; int inputs (`{ int: [lo, hi], shape }`) are passed as int32.
 */
export function checkOp(title: string, inputs: InputSpec[], op: OpFn, reference: RefFn, opts: CheckOpOptions = {}): void {
  perDevice(title, (t, device) => {
    try {
      runCheck(t, title, device, inputs, op, reference, opts);
    } catch (e) {
      // The CUDA backend grows op by op: an op without a CUDA kernel must refuse with this typed
      // error (anything else fails the test); it is logged so the gap stays visible.
      if (device === 'cuda' && e instanceof kiln.KilnError && e.code === 'DEVICE_MISMATCH' && /no CUDA kernel yet/.test(e.message)) {
        t.log(`pending CUDA kernel: ${e.message}`);
        t.pass();
        return;
      }
      throw e;
    }
  });
}

function runCheck(t: ExecutionContext, title: string, device: Device, inputs: InputSpec[], op: OpFn, reference: RefFn, opts: CheckOpOptions): void {
  const rng = prng(hashString(title));
  const values = inputs.map((s) => makeValues(s, rng));
  const floatIdx = inputs.map((s, i) => (isInt(s) || (!Array.isArray(s) && s.noGrad) ? -1 : i)).filter((i) => i >= 0);
  const dtypes = opts.dtypes ?? ['float32', 'float64'];
  const wantGrad = (opts.grad ?? floatIdx.length > 0) && dtypes.some((d) => d !== 'int32');
  const before = kiln.memory().tensors;
  const seed = hashString(title + '/w');

  /** Builds inputs in dtype d (on the CPU; moved to `device` by the caller). */
  const build = (d: DType, grad: boolean): Tensor[] =>
    inputs.map((s, i) => {
      if (isInt(s)) return kiln.tensor(Int32Array.from(values[i]), { shape: s.shape.slice() });
      const v = d === 'int32' ? values[i].map((x) => Math.round(x * 3)) : values[i];
      const dt = d;
      return kiln.tensor(
        dt === 'float64' ? Float64Array.from(v) : dt === 'int32' ? Int32Array.from(v) : Float32Array.from(v),
        { shape: shapeOf(s).slice(), requiresGrad: grad && dt !== 'int32' && floatIdx.includes(i) },
      );
    });
  const onDevice = (xs: Tensor[]) => (device === 'cpu' ? xs : xs.map((x) => x.to('cuda')));

  const grads: Partial<Record<DType, Float64Array[]>> = {};
  let outShape: number[] | null = null;
  for (const d of [...dtypes, ...(wantGrad && !dtypes.includes('float64') ? ['float64' as DType] : [])]) {
    const checkForward = dtypes.includes(d);
    kiln.tidy(() => {
      const leaves = build(d, wantGrad && d !== 'int32');
      const xs = onDevice(leaves);
      const out = op(...xs);
      t.is(out.device, device, `${title} ${d}: output on ${out.device}`);
      const host = device === 'cpu' ? out : out.to('cpu');
      outShape = out.shape.slice();
      if (checkForward) {
        const want = reference(...leaves.map(refOf));
        t.deepEqual(out.shape, want.shape, `${title} ${d}: output shape`);
        const wantDtype = opts.outDtype ? opts.outDtype(d) : d;
        t.is(out.dtype, wantDtype, `${title} ${d}: output dtype`);
        assertClose(t, `${title} ${d} forward`, host.dataSync(), want.data, opts.tol?.[d] ?? FWD_TOL[wantDtype]);
      }
      if (wantGrad && d !== 'int32') {
        const w = weights(seed, out.shape, out.dtype);
        out.backward(device === 'cpu' ? w : w.to('cuda'));
        grads[d] = floatIdx.map((i) => {
          const g = leaves[i].grad;
          t.truthy(g, `${title} ${d}: input ${i} got no gradient`);
          t.deepEqual(g!.shape, leaves[i].shape, `${title} ${d}: gradient shape of input ${i}`);
          return Float64Array.from(g!.dataSync());
        });
      }
    });
  }

  if (wantGrad && device === 'cpu') {
    // Finite differences in float64 on the weighted output, so zero-sum ops (softmax) still get checked.
    const w64 = weights(seed, outShape!, 'float64');
    const ints = build('float64', false);
    const f = (...fx: Tensor[]) => {
      const all = ints.slice();
      floatIdx.forEach((i, k) => (all[i] = fx[k]));
      return op(...all).mul(w64);
    };
    const gc = opts.gradcheckTol ?? { atol: 1e-5, rtol: 1e-3 };
    const r = kiln.gradcheck(f, floatIdx.map((i) => ints[i]), { atol: gc.atol, rtol: gc.rtol });
    t.true(r.ok, `${title}: float64 gradcheck failed: ${JSON.stringify(r.worst)}`);
    w64.dispose();
    ints.forEach((x) => x.dispose());
  }
  if (wantGrad && grads.float32 && grads.float64)
    grads.float32.forEach((g, k) =>
      assertClose(t, `${title}: float32 gradient of input ${floatIdx[k]} vs float64`, g, grads.float64![k], opts.gradTol ?? { atol: 1e-4, rtol: 1e-3 }));
  t.is(kiln.memory().tensors, before, `${title}: live tensors back to baseline`);
}

/** The fixed upstream gradient: deterministic values in [0.5, 1.5) of the output's shape. */
function weights(seed: number, shape: number[], d: DType): Tensor {
  const rng = prng(seed);
  const v = Array.from({ length: numel(shape) }, () => Math.fround(0.5 + rng()));
  return kiln.tensor(d === 'float64' ? Float64Array.from(v) : Float32Array.from(v), { shape: shape.slice() });
}
