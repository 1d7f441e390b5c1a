// Elementwise ops with broadcasting, each with its gradient. Scalars fold into the unary affine
// kernel, so `x.mul(2).add(1)` allocates no scalar tensors.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { isDType, type DType } from '../tensor/dtype.js';
import { Binary, Unary } from '../tensor/opcodes.js';
import { broadcastShapes, broadcastStrides, sameShape } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { full } from './creation.js';
import { sum } from './reduce.js';
import { arg, cast, checkTensor, releaseMade, sameDevice, unaryInto } from './util.js';

export type TensorLike = Tensor | number;

// ---------------------------------------------------------------- kernels (no autograd)

function binaryKernel(op: Binary, name: string, a: Tensor, b: Tensor, outDtype: DType): Tensor {
  const same = sameShape(a.shape, b.shape);
  const dense = same && a.isContiguous() && b.isContiguous();
  // A dense same-shape result can share a's (immutable) shape and strides arrays.
  const out = dense ? empty(a.shape, outDtype, a.device, a.strides)
    : empty(same ? a.shape.slice() : broadcastShapes(name, a.shape, b.shape), outDtype, a.device);
  const shape = out.shape;
  A[0] = op;
  const ob = arg(4, out);
  const ab = arg(7, a);
  const bb = arg(10, b);
  if (dense) {
    A[1] = 1;
    A[16] = out.size;
    A[24] = 1;
    A[32] = 1;
    A[40] = 1;
  } else {
    const nd = shape.length;
    A[1] = nd;
    const sa = broadcastStrides(a.shape, a.strides, shape);
    const sb = broadcastStrides(b.shape, b.strides, shape);
    for (let i = 0; i < nd; i++) {
      A[16 + i] = shape[i];
      A[24 + i] = out.strides[i];
      A[32 + i] = sa[i];
      A[40 + i] = sb[i];
    }
  }
  N.binary(ob, ab, bb);
  return out;
}

function unaryKernel(op: Unary, x: Tensor, p0 = 0, p1 = 0, outDtype: DType = x.dtype): Tensor {
  const out = empty(x.shape.slice(), outDtype, x.device);
  unaryInto(op, out, x, p0, p1);
  return out;
}

// ---------------------------------------------------------------- promotion

// Two dtypes of one rank: int32 takes the float's dtype, a wider float wins, float16 with bfloat16
// gives float32 (torch.promote_types).
function promote(a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === 'int32') return b;
  if (b === 'int32') return a;
  if (a === 'float64' || b === 'float64') return 'float64';
  return 'float32';
}

// A lower-ranked result only counts when it is of a higher category (integer < floating).
function combine(higher: DType | undefined, lower: DType | undefined): DType | undefined {
  if (higher === undefined) return lower;
  if (lower === undefined || higher !== 'int32') return higher;
  return lower === 'int32' ? higher : promote(higher, lower);
}

/**
 * The dtype an elementwise op computes in, as torch.result_type: dimensioned tensors outrank 0-d
 * tensors, which outrank numbers, and a lower rank changes the dtype only by raising its category
 * (bfloat16[3] + float32[] is bfloat16, int32[3] + float32[] float32). A number is an integer when
 * Number.isInteger (so 2.0 counts as the integer 2: JavaScript cannot tell them apart) and otherwise
 * a float of the default dtype, float32.
 */
export function resultType(...operands: TensorLike[]): DType {
  let dim: DType | undefined, zero: DType | undefined, num: DType | undefined;
  for (const t of operands) {
    if (typeof t === 'number') {
      const d = Number.isInteger(t) ? 'int32' : 'float32';
      num = num === undefined ? d : promote(num, d);
    } else if (t.ndim === 0) zero = zero === undefined ? t.dtype : promote(zero, t.dtype);
    else dim = dim === undefined ? t.dtype : promote(dim, t.dtype);
  }
  return combine(dim, combine(zero, num)) ?? 'float32';
}

/** Converts dtype with a gradient (identity cast returns the tensor itself). */
export function toDType(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = cast(x, dtype);
  if (dtype === 'int32') return out;
  return record(out, 'cast', [x], (g) => [x.dtype === 'int32' ? null : cast(g, x.dtype)]);
}

/**
 * x converted to `dtype` (kiln.cast, Tensor.to(dtype)). Narrowing to float16 / bfloat16 rounds to
 * nearest, ties to even (overflow gives inf, NaN stays NaN), bit-identical on CPU and CUDA. It is
 * differentiable between float dtypes: the gradient is cast back to x's dtype.
 */
export function castTo(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', x);
  if (!isDType(dtype)) throw new KilnError('INVALID_ARGUMENT', `cast: unknown dtype '${String(dtype)}'`);
  return toDType(x, dtype);
}

/** Refuses a number that int32 arithmetic with `operand` would take out of range (PyTorch wraps it modulo 2^32; kiln refuses). */
function needInt32Scalar(name: string, v: number, operand: Tensor): void {
  if (!(v >= -2147483648 && v <= 2147483647))
    throw new KilnError('INVALID_ARGUMENT', `${name}: ${v} does not fit int32 (int32 operand ${shapeStr(operand.shape)}); cast the tensor to a float dtype first`);
}

/** A number as a 0-d tensor of `dtype`; an int32 one must fit. */
function scalarOperand(name: string, v: number, dtype: DType, other: Tensor): Tensor {
  if (dtype === 'int32') needInt32Scalar(name, v, other);
  return full([], v, dtype, other.device);
}

// Both operands as tensors of their result dtype (resultType); a cast records its gradient, which
// comes back in the operand's own dtype.
function operands(name: string, a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number')
    throw new KilnError('INVALID_ARGUMENT', `${name}: at least one operand must be a Tensor`);
  if (typeof a !== 'number') checkTensor(name, a);
  if (typeof b !== 'number') checkTensor(name, b, 'other');
  if (typeof a !== 'number' && typeof b !== 'number') sameDevice(name, a, b);
  const d = resultType(a, b);
  const ta = typeof a === 'number' ? scalarOperand(name, a, d, b as Tensor) : toDType(a, d);
  const tb = typeof b === 'number' ? scalarOperand(name, b, d, a as Tensor) : toDType(b, d);
  return [ta, tb];
}

/** Sums a broadcast gradient back to `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = sum(g, axes, true);
  return s.reshape([...shape]);
}

// ---------------------------------------------------------------- binary ops

function affine(name: string, input: Tensor, scale: number, shift: number): Tensor {
  const x = input.dtype === 'int32' && !(Number.isInteger(scale) && Number.isInteger(shift)) ? toDType(input, 'float32') : input;
  // int32 arithmetic takes the number as an int32.
  if (x.dtype === 'int32') for (const v of [scale, shift]) needInt32Scalar(name, v, x);
  const out = unaryKernel(Unary.Affine, x, scale, shift);
  return releaseMade(record(out, name, [x], (g) => [scale === 1 ? g : unaryKernel(Unary.Affine, g, scale, 0)]), [x], [input]);
}

export function add(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) return affine('add', checkTensor('add', a), 1, b);
  if (typeof a === 'number' && b instanceof Tensor) return affine('add', checkTensor('add', b), 1, a);
  const [x, y] = operands('add', a, b);
  const out = binaryKernel(Binary.Add, 'add', x, y, x.dtype);
  return releaseMade(record(out, 'add', [x, y], (g) => [sumTo(g, x.shape), sumTo(g, y.shape)]), [x, y], [a, b]);
}

export function sub(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) return affine('sub', checkTensor('sub', a), 1, -b);
  if (typeof a === 'number' && b instanceof Tensor) return affine('sub', checkTensor('sub', b), -1, a);
  const [x, y] = operands('sub', a, b);
  const out = binaryKernel(Binary.Sub, 'sub', x, y, x.dtype);
  return releaseMade(record(out, 'sub', [x, y], (g) => [sumTo(g, x.shape), y.requiresGrad ? sumTo(neg(g), y.shape) : null]), [x, y], [a, b]);
}

export function mul(a: TensorLike, b: TensorLike): Tensor {
  // x * s + (-0) is x * s for every x; a +0 shift would turn -0 * s into +0.
  if (typeof b === 'number' && a instanceof Tensor) return affine('mul', checkTensor('mul', a), b, -0);
  if (typeof a === 'number' && b instanceof Tensor) return affine('mul', checkTensor('mul', b), a, -0);
  const [x, y] = operands('mul', a, b);
  const out = binaryKernel(Binary.Mul, 'mul', x, y, x.dtype);
  return releaseMade(record(out, 'mul', [x, y], (g) => [
    x.requiresGrad ? sumTo(mul(g, y), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, x), y.shape) : null,
  ]), [x, y], [a, b]);
}

export function div(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) {
    const x = checkTensor('div', a);
    const xf = x.dtype === 'int32' ? toDType(x, 'float32') : x;
    return releaseMade(affine('div', xf, 1 / b, -0), [xf], [x]);
  }
  let [x, y] = operands('div', a, b);
  if (x.dtype === 'int32') {
    x = toDType(x, 'float32');
    y = toDType(y, 'float32');
  }
  const out = binaryKernel(Binary.Div, 'div', x, y, x.dtype);
  return releaseMade(record(out, 'div', [x, y], (g) => [
    x.requiresGrad ? sumTo(div(g, y), x.shape) : null,
    y.requiresGrad ? sumTo(neg(div(mul(g, out), y)), y.shape) : null,
  ]), [x, y], [a, b]);
}

export function pow(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor && !(a.dtype === 'int32' && Number.isInteger(b))) {
    let x = checkTensor('pow', a);
    if (x.dtype === 'int32') x = toDType(x, 'float32');
    const out = unaryKernel(Unary.PowScalar, x, b);
    // As PyTorch, x^0 has gradient 0 everywhere (0 * x^-1 would be NaN at x = 0).
    return releaseMade(record(out, 'pow', [x], (g) => [b === 0 ? mul(g, 0) : mul(g, mul(unaryKernel(Unary.PowScalar, x, b - 1), b))]), [x], [a]);
  }
  if (typeof b === 'number' && b < 0 && a instanceof Tensor)
    throw new KilnError('INVALID_ARGUMENT', `pow: integers to negative integer powers are not allowed (int32 ${shapeStr(checkTensor('pow', a).shape)} ** ${b}); cast to a float dtype first`);
  // int32 ** int32 stays int32 (wrapping products, as PyTorch); other pairs compute in resultType.
  const [x, y] = operands('pow', a, b);
  const out = binaryKernel(Binary.Pow, 'pow', x, y, x.dtype);
  // As PyTorch: d/dx is 0 where y = 0 (not 0 * x^-1), d/dy is 0 where x = 0 and y >= 0 (not 0 * log 0).
  return releaseMade(record(out, 'pow', [x, y], (g) => [
    x.requiresGrad ? sumTo(mul(g, where(eq(y, 0), 0, mul(y, pow(x, sub(y, 1))))), x.shape) : null,
    y.requiresGrad ? sumTo(mul(g, where(mul(eq(x, 0), ge(y, 0)), 0, mul(out, log(x)))), y.shape) : null,
  ]), [x, y], [a, b]);
}

function minmax(op: Binary.Maximum | Binary.Minimum, name: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(name, a, b);
  const out = binaryKernel(op, name, x, y, x.dtype);
  return releaseMade(record(out, name, [x, y], (g) => {
    // The winner takes the gradient; ties split it evenly. As PyTorch, an operand loses only to a
    // strictly better one, so where either side is NaN (the result is NaN) both take the gradient.
    const win = (p: Tensor, q: Tensor) => {
      const worse = binaryKernel(op === Binary.Maximum ? Binary.Lt : Binary.Gt, name, p, q, 'int32');
      const tie = binaryKernel(Binary.Eq, name, p, q, 'int32');
      const w = sub(1, add(cast(worse, g.dtype), mul(cast(tie, g.dtype), 0.5)));
      return mul(g, w);
    };
    return [x.requiresGrad ? sumTo(win(x, y), x.shape) : null, y.requiresGrad ? sumTo(win(y, x), y.shape) : null];
  }), [x, y], [a, b]);
}
export const maximum = (a: TensorLike, b: TensorLike) => minmax(Binary.Maximum, 'maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike) => minmax(Binary.Minimum, 'minimum', a, b);

function compare(op: Binary, name: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(name, a, b);
  return releaseMade(binaryKernel(op, name, x, y, 'int32'), [x, y], [a, b]);
}
export const eq = (a: TensorLike, b: TensorLike) => compare(Binary.Eq, 'eq', a, b);
export const ne = (a: TensorLike, b: TensorLike) => compare(Binary.Ne, 'ne', a, b);
export const lt = (a: TensorLike, b: TensorLike) => compare(Binary.Lt, 'lt', a, b);
export const le = (a: TensorLike, b: TensorLike) => compare(Binary.Le, 'le', a, b);
export const gt = (a: TensorLike, b: TensorLike) => compare(Binary.Gt, 'gt', a, b);
export const ge = (a: TensorLike, b: TensorLike) => compare(Binary.Ge, 'ge', a, b);

// ---------------------------------------------------------------- unary ops

function floatInput(name: string, x: Tensor): Tensor {
  checkTensor(name, x);
  return x.dtype === 'int32' ? toDType(x, 'float32') : x;
}

function unaryOp(op: Unary, name: string, input: Tensor, grad: (g: Tensor, x: Tensor, y: Tensor) => Tensor): Tensor {
  const x = floatInput(name, input);
  const out = unaryKernel(op, x);
  return releaseMade(record(out, name, [x], (g) => [grad(g, x, out)]), [x], [input]);
}

export function neg(x: Tensor): Tensor {
  checkTensor('neg', x);
  const out = unaryKernel(Unary.Neg, x);
  return record(out, 'neg', [x], (g) => [unaryKernel(Unary.Neg, g)]);
}
export const exp = (x: Tensor) => unaryOp(Unary.Exp, 'exp', x, (g, _x, y) => mul(g, y));
export const log = (x: Tensor) => unaryOp(Unary.Log, 'log', x, (g, x) => div(g, x));
export const sqrt = (x: Tensor) => unaryOp(Unary.Sqrt, 'sqrt', x, (g, _x, y) => div(mul(g, 0.5), y));
export const rsqrt = (x: Tensor) =>
  unaryOp(Unary.Rsqrt, 'rsqrt', x, (g, _x, y) => mul(g, mul(unaryKernel(Unary.PowScalar, y, 3), -0.5)));
export function abs(x: Tensor): Tensor {
  checkTensor('abs', x);
  const out = unaryKernel(Unary.Abs, x);
  return record(out, 'abs', [x], (g) => [mul(g, unaryKernel(Unary.Sign, x))]);
}
export const tanh = (x: Tensor) =>
  unaryOp(Unary.Tanh, 'tanh', x, (g, _x, y) => binaryKernel(Binary.TanhBackward, 'tanh', g, y, g.dtype));
export const sigmoid = (x: Tensor) =>
  unaryOp(Unary.Sigmoid, 'sigmoid', x, (g, _x, y) => binaryKernel(Binary.SigmoidBackward, 'sigmoid', g, y, g.dtype));
export const relu = (x: Tensor) =>
  unaryOp(Unary.Relu, 'relu', x, (g, x) => binaryKernel(Binary.ReluBackward, 'relu', g, x, g.dtype));
/** GELU; `approximate: 'tanh'` (GPT-2's) or 'none' (exact, erf). */
export function gelu(x: Tensor, approximate: 'tanh' | 'none' = 'none'): Tensor {
  if (approximate !== 'tanh' && approximate !== 'none')
    throw new KilnError('INVALID_ARGUMENT', `gelu: approximate must be 'tanh' or 'none', got ${typeof approximate === 'string' ? approximate : typeof approximate}`);
  if (approximate === 'tanh')
    return unaryOp(Unary.GeluTanh, 'gelu', x, (g, x) => binaryKernel(Binary.GeluTanhBackward, 'gelu', g, x, g.dtype));
  return unaryOp(Unary.GeluErf, 'gelu', x, (g, x) => binaryKernel(Binary.GeluErfBackward, 'gelu', g, x, g.dtype));
}
export const sin = (x: Tensor) => unaryOp(Unary.Sin, 'sin', x, (g, x) => mul(g, unaryKernel(Unary.Cos, x)));
export const cos = (x: Tensor) => unaryOp(Unary.Cos, 'cos', x, (g, x) => neg(mul(g, unaryKernel(Unary.Sin, x))));
export const square = (x: Tensor) => unaryOp(Unary.Square, 'square', x, (g, x) => mul(mul(g, x), 2));
export const reciprocal = (x: Tensor) =>
  unaryOp(Unary.Reciprocal, 'reciprocal', x, (g, _x, y) => neg(mul(g, unaryKernel(Unary.Square, y))));
export const log1p = (x: Tensor) => unaryOp(Unary.Log1p, 'log1p', x, (g, x) => div(g, add(x, 1)));
export const expm1 = (x: Tensor) => unaryOp(Unary.Expm1, 'expm1', x, (g, _x, y) => mul(g, add(y, 1)));
export function sign(x: Tensor): Tensor {
  return unaryKernel(Unary.Sign, checkTensor('sign', x));
}
export function floor(x: Tensor): Tensor {
  const xf = floatInput('floor', x);
  return releaseMade(unaryKernel(Unary.Floor, xf), [xf], [x]);
}
export function isNan(x: Tensor): Tensor {
  const xf = floatInput('isNan', x);
  return releaseMade(unaryKernel(Unary.IsNan, xf, 0, 0, 'int32'), [xf], [x]);
}
export function isFinite(x: Tensor): Tensor {
  const xf = floatInput('isFinite', x);
  return releaseMade(unaryKernel(Unary.IsFinite, xf, 0, 0, 'int32'), [xf], [x]);
}

export function clamp(input: Tensor, min = -Infinity, max = Infinity): Tensor {
  let x = checkTensor('clamp', input);
  if (typeof min !== 'number' || typeof max !== 'number' || Number.isNaN(min) || Number.isNaN(max))
    throw new KilnError('INVALID_ARGUMENT', `clamp: min and max must be numbers (not NaN), got ${String(min)} and ${String(max)} for ${shapeStr(x.shape)}`);
  if (min > max) throw new KilnError('INVALID_ARGUMENT', `clamp: min ${min} is greater than max ${max}`);
  const whole = (b: number) => Number.isInteger(b) || !Number.isFinite(b);
  if (x.dtype === 'int32' && !(whole(min) && whole(max))) x = toDType(x, 'float32');
  const out = unaryKernel(Unary.Clamp, x, min, max);
  return releaseMade(record(out, 'clamp', [x], (g) => {
    const inside = binaryKernel(Binary.Eq, 'clamp', out, x, 'int32');
    return [where(inside, g, 0)];
  }), [x], [input]);
}

/** cond ? a : b, broadcasting all three (cond is any dtype; nonzero is true). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkTensor('where', cond, 'condition');
  const [x, y] = operands('where', a, b);
  sameDevice('where', cond, x);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, x.shape), y.shape);
  const out = empty(shape, x.dtype, x.device);
  const nd = shape.length;
  A[0] = 0;
  A[1] = nd;
  const ob = arg(4, out), cb = arg(7, cond), ab = arg(10, x), bb = arg(13, y);
  const sc = broadcastStrides(cond.shape, cond.strides, shape);
  const sx = broadcastStrides(x.shape, x.strides, shape);
  const sy = broadcastStrides(y.shape, y.strides, shape);
  for (let i = 0; i < nd; i++) {
    A[16 + i] = shape[i];
    A[24 + i] = out.strides[i];
    A[32 + i] = sc[i];
    A[40 + i] = sx[i];
    A[48 + i] = sy[i];
  }
  N.ternary(ob, cb, ab, bb);
  return releaseMade(record(out, 'where', [x, y], (g) => [
    x.requiresGrad ? sumTo(where(cond, g, 0), x.shape) : null,
    y.requiresGrad ? sumTo(where(cond, 0, g), y.shape) : null,
  ]), [x, y], [a, b]);
}

/** x with `value` wherever mask is nonzero (mask broadcasts to x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor('maskedFill', x);
  checkTensor('maskedFill', mask, 'mask');
  broadcastShapes('maskedFill', x.shape, mask.shape);
  return where(mask, value, x);
}

/** Elementwise fused kernels for the autograd engine and optimizers. */
export { binaryKernel, unaryKernel };
