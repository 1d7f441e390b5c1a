// Mirrors of the op codes in kernels/cpu/elementwise.h and kernels/cpu/kernels.h (same order).
export const enum Unary {
  Copy = 0, Neg, Exp, Log, Sqrt, Rsqrt, Abs, Tanh, Sigmoid, Relu, GeluTanh, GeluErf, Sin, Cos,
  Sign, Square, Reciprocal, Affine, PowScalar, Clamp, Log1p, Expm1, Floor, Ceil, Round, IsNan, IsInf,
  IsFinite, Fill,
}

export const enum Binary {
  Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge,
  ReluBackward, GeluTanhBackward, GeluErfBackward, SigmoidBackward, TanhBackward,
}

export const enum Reduce { Sum = 0, Mean, Max, Min, LogSumExp, Prod }
