// Decoders for the non-elementwise CPU kernels (kernels/cpu/kernels.h). Every operand is dense and
// row-major (TypeScript makes views contiguous first); sizes are re-checked against the storage here.
#include <cstring>

#include "../kernels/cpu/kernels.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;

TensorRef cpu_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name) {
  TensorRef t = tensor_arg(info, c, jsArg, pos, op, name);
  need_cpu(t, op, name);
  return t;
}

TensorRef float_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name,
                    cpu::DType like) {
  TensorRef t = cpu_arg(info, c, jsArg, pos, op, name);
  need_dtype(t, like, op, name);
  return t;
}

template <class T> T* P(const TensorRef& t) { return reinterpret_cast<T*>(t.ptr); }

#define KILN_FLOAT_DISPATCH(dtype, op, ...)                                        \
  do {                                                                             \
    if ((dtype) == cpu::DType::F32) { using T = float; __VA_ARGS__; }              \
    else if ((dtype) == cpu::DType::F64) { using T = double; __VA_ARGS__; }        \
    else fail("DTYPE_MISMATCH", std::string(op) + ": needs float32 or float64"); \
  } while (0)

Napi::Value reduce(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "reduce";
  auto rop = static_cast<cpu::ReduceOp>(int_arg(c, 0, op, "op", 0, 5));
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 0, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  TensorRef x = cpu_arg(info, c, 0, 4, op, "input");
  TensorRef y = cpu_arg(info, c, 1, 7, op, "output");
  need_dtype(y, x.dtype, op, "output");
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * inner, op, "output");
  if (x.dtype == cpu::DType::I32) {
    if (rop != cpu::ReduceOp::Sum && rop != cpu::ReduceOp::Max && rop != cpu::ReduceOp::Min)
      fail("DTYPE_MISMATCH", "reduce: int32 supports sum, max and min only");
    cpu::reduce_i32(rop, P<int32_t>(x), P<int32_t>(y), outer, r, inner);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::reduce<T>(rop, P<T>(x), P<T>(y), outer, r, inner));
  }
  return info.Env().Undefined();
}

Napi::Value arg_reduce(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "argmax";
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 1, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  TensorRef x = cpu_arg(info, c, 0, 4, op, "input");
  TensorRef y = cpu_arg(info, c, 1, 7, op, "output");
  need_dtype(y, cpu::DType::I32, op, "output");
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * inner, op, "output");
  KILN_FLOAT_DISPATCH(x.dtype, op, cpu::arg_reduce<T>(c.args[0] != 0, P<T>(x), P<int32_t>(y), outer, r, inner));
  return info.Env().Undefined();
}

Napi::Value cumsum(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "cumsum";
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 0, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  TensorRef x = cpu_arg(info, c, 0, 4, op, "input");
  TensorRef y = float_arg(info, c, 1, 7, op, "output", x.dtype);
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * r * inner, op, "output");
  KILN_FLOAT_DISPATCH(x.dtype, op, cpu::cumsum<T>(P<T>(x), P<T>(y), outer, r, inner, c.args[0] != 0));
  return info.Env().Undefined();
}

Napi::Value topk(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "topk";
  int64_t rows = int_arg(c, 1, op, "rows", 0, kMaxSize), n = int_arg(c, 2, op, "n", 1, kMaxSize);
  int64_t k = int_arg(c, 3, op, "k", 1, n);
  TensorRef x = cpu_arg(info, c, 0, 4, op, "input");
  TensorRef v = float_arg(info, c, 1, 7, op, "values", x.dtype);
  TensorRef ix = cpu_arg(info, c, 2, 10, op, "indices");
  need_dtype(ix, cpu::DType::I32, op, "indices");
  need_elems(x, rows * n, op, "input");
  need_elems(v, rows * k, op, "values");
  need_elems(ix, rows * k, op, "indices");
  KILN_FLOAT_DISPATCH(x.dtype, op, cpu::topk<T>(P<T>(x), P<T>(v), P<int32_t>(ix), rows, n, k, c.args[0] != 0));
  return info.Env().Undefined();
}

// kind 0 softmax, 1 log-softmax, 2 softmax backward, 3 log-softmax backward.
Napi::Value softmax(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "softmax";
  int64_t kind = int_arg(c, 0, op, "kind", 0, 3);
  int64_t rows = int_arg(c, 1, op, "rows", 0, kMaxSize), n = int_arg(c, 2, op, "n", 0, kMaxSize);
  TensorRef a = cpu_arg(info, c, 0, 4, op, "input");
  TensorRef o = float_arg(info, c, 2, 10, op, "output", a.dtype);
  need_elems(a, rows * n, op, "input");
  need_elems(o, rows * n, op, "output");
  if (kind < 2) {
    KILN_FLOAT_DISPATCH(a.dtype, op, (kind == 0 ? cpu::softmax_forward<T> : cpu::log_softmax_forward<T>)(P<T>(a), P<T>(o), rows, n));
  } else {
    TensorRef g = float_arg(info, c, 1, 7, op, "grad", a.dtype);
    need_elems(g, rows * n, op, "grad");
    KILN_FLOAT_DISPATCH(a.dtype, op,
                        (kind == 2 ? cpu::softmax_backward<T> : cpu::log_softmax_backward<T>)(P<T>(a), P<T>(g), P<T>(o), rows, n));
  }
  return info.Env().Undefined();
}

// JS args: x, gamma, beta, y, mean, rstd.
Napi::Value layernorm_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "layerNorm";
  int64_t rows = int_arg(c, 0, op, "rows", 0, kMaxSize), n = int_arg(c, 1, op, "n", 1, kMaxSize);
  bool hasG = c.args[3] != 0, hasB = c.args[4] != 0;
  TensorRef x = cpu_arg(info, c, 0, 5, op, "input");
  need_elems(x, rows * n, op, "input");
  TensorRef g, b;
  if (hasG) { g = float_arg(info, c, 1, 8, op, "weight", x.dtype); need_elems(g, n, op, "weight"); }
  if (hasB) { b = float_arg(info, c, 2, 11, op, "bias", x.dtype); need_elems(b, n, op, "bias"); }
  TensorRef y = float_arg(info, c, 3, 14, op, "output", x.dtype);
  TensorRef mean = float_arg(info, c, 4, 17, op, "mean", x.dtype);
  TensorRef rstd = float_arg(info, c, 5, 20, op, "rstd", x.dtype);
  need_elems(y, rows * n, op, "output");
  need_elems(mean, rows, op, "mean");
  need_elems(rstd, rows, op, "rstd");
  KILN_FLOAT_DISPATCH(x.dtype, op,
                      cpu::layernorm_forward<T>(P<T>(x), hasG ? P<T>(g) : nullptr, hasB ? P<T>(b) : nullptr, P<T>(y),
                                                P<T>(mean), P<T>(rstd), rows, n, T(c.args[2])));
  return info.Env().Undefined();
}

// JS args: x, gamma, mean, rstd, dy, dx, dgamma, dbeta.
Napi::Value layernorm_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "layerNorm backward";
  int64_t rows = int_arg(c, 0, op, "rows", 0, kMaxSize), n = int_arg(c, 1, op, "n", 1, kMaxSize);
  bool hasG = c.args[3] != 0, wantDg = c.args[4] != 0, wantDb = c.args[5] != 0;
  TensorRef x = cpu_arg(info, c, 0, 6, op, "input");
  need_elems(x, rows * n, op, "input");
  TensorRef g, dg, db;
  if (hasG) { g = float_arg(info, c, 1, 9, op, "weight", x.dtype); need_elems(g, n, op, "weight"); }
  TensorRef mean = float_arg(info, c, 2, 12, op, "mean", x.dtype);
  TensorRef rstd = float_arg(info, c, 3, 15, op, "rstd", x.dtype);
  TensorRef dy = float_arg(info, c, 4, 18, op, "grad", x.dtype);
  TensorRef dx = float_arg(info, c, 5, 21, op, "dx", x.dtype);
  if (wantDg) { dg = float_arg(info, c, 6, 24, op, "dweight", x.dtype); need_elems(dg, n, op, "dweight"); }
  if (wantDb) { db = float_arg(info, c, 7, 27, op, "dbias", x.dtype); need_elems(db, n, op, "dbias"); }
  need_elems(mean, rows, op, "mean");
  need_elems(rstd, rows, op, "rstd");
  need_elems(dy, rows * n, op, "grad");
  need_elems(dx, rows * n, op, "dx");
  KILN_FLOAT_DISPATCH(x.dtype, op,
                      cpu::layernorm_backward<T>(P<T>(x), hasG ? P<T>(g) : nullptr, P<T>(mean), P<T>(rstd), P<T>(dy), P<T>(dx),
                                                 wantDg ? P<T>(dg) : nullptr, wantDb ? P<T>(db) : nullptr, rows, n));
  return info.Env().Undefined();
}

void check_indices(const TensorRef& idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed, const char* op) {
  int64_t bad = cpu::find_invalid_index(reinterpret_cast<const int32_t*>(idx.ptr), n, lo, hi, allowed);
  if (bad >= 0)
    fail("INDEX_OUT_OF_RANGE", std::string(op) + ": index " + std::to_string(reinterpret_cast<const int32_t*>(idx.ptr)[bad]) +
                                   " at position " + std::to_string(bad) + " is outside [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + ")");
}

Napi::Value cross_entropy_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "crossEntropy";
  int64_t N = int_arg(c, 0, op, "N", 0, kMaxSize), C = int_arg(c, 1, op, "C", 1, INT32_MAX);
  int32_t ignore = static_cast<int32_t>(int_arg(c, 2, op, "ignoreIndex", INT32_MIN, INT32_MAX));
  TensorRef logits = cpu_arg(info, c, 0, 4, op, "logits");
  TensorRef t = cpu_arg(info, c, 1, 7, op, "targets");
  need_dtype(t, cpu::DType::I32, op, "targets");
  TensorRef losses = float_arg(info, c, 2, 10, op, "losses", logits.dtype);
  TensorRef lse = float_arg(info, c, 3, 13, op, "lse", logits.dtype);
  need_elems(logits, N * C, op, "logits");
  need_elems(t, N, op, "targets");
  need_elems(losses, N, op, "losses");
  need_elems(lse, N, op, "lse");
  check_indices(t, N, 0, static_cast<int32_t>(C), ignore, op);
  KILN_FLOAT_DISPATCH(logits.dtype, op,
                      cpu::cross_entropy_forward<T>(P<T>(logits), P<int32_t>(t), P<T>(losses), P<T>(lse), N, C, ignore, T(c.args[3])));
  return info.Env().Undefined();
}

Napi::Value cross_entropy_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "crossEntropy backward";
  int64_t N = int_arg(c, 0, op, "N", 0, kMaxSize), C = int_arg(c, 1, op, "C", 1, INT32_MAX);
  int32_t ignore = static_cast<int32_t>(int_arg(c, 2, op, "ignoreIndex", INT32_MIN, INT32_MAX));
  TensorRef logits = cpu_arg(info, c, 0, 4, op, "logits");
  TensorRef t = cpu_arg(info, c, 1, 7, op, "targets");
  need_dtype(t, cpu::DType::I32, op, "targets");
  TensorRef lse = float_arg(info, c, 2, 10, op, "lse", logits.dtype);
  TensorRef dl = float_arg(info, c, 3, 13, op, "grad", logits.dtype);
  TensorRef dx = float_arg(info, c, 4, 16, op, "dlogits", logits.dtype);
  need_elems(logits, N * C, op, "logits");
  need_elems(t, N, op, "targets");
  need_elems(lse, N, op, "lse");
  need_elems(dl, N, op, "grad");
  need_elems(dx, N * C, op, "dlogits");
  check_indices(t, N, 0, static_cast<int32_t>(C), ignore, op);
  KILN_FLOAT_DISPATCH(logits.dtype, op,
                      cpu::cross_entropy_backward<T>(P<T>(logits), P<int32_t>(t), P<T>(lse), P<T>(dl), P<T>(dx), N, C, ignore,
                                                     T(c.args[3])));
  return info.Env().Undefined();
}

Napi::Value embedding(const Napi::CallbackInfo& info, Context& c) {
  bool backward = c.args[3] != 0;
  const char* op = backward ? "embedding backward" : "embedding";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize), V = int_arg(c, 1, op, "V", 1, INT32_MAX), D = int_arg(c, 2, op, "D", 0, kMaxSize);
  TensorRef src = cpu_arg(info, c, 0, 4, op, backward ? "grad" : "weight");
  TensorRef idx = cpu_arg(info, c, 1, 7, op, "indices");
  need_dtype(idx, cpu::DType::I32, op, "indices");
  TensorRef dst = float_arg(info, c, 2, 10, op, backward ? "dweight" : "output", src.dtype);
  need_elems(idx, n, op, "indices");
  need_elems(src, backward ? n * D : V * D, op, backward ? "grad" : "weight");
  need_elems(dst, backward ? V * D : n * D, op, backward ? "dweight" : "output");
  check_indices(idx, n, 0, static_cast<int32_t>(V), INT32_MIN, op);
  if (backward) {
    std::memset(dst.ptr, 0, static_cast<size_t>(V * D) * dtype_size(dst.dtype));
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::embedding_backward<T>(P<T>(src), P<int32_t>(idx), P<T>(dst), n, V, D));
  } else {
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::embedding_forward<T>(P<T>(src), P<int32_t>(idx), P<T>(dst), n, V, D));
  }
  return info.Env().Undefined();
}

// kind 0 uniform(a, b), 1 normal(mean a, std b), 2 randint [a, b); seed = lo + hi * 2^32; offset in words.
Napi::Value random(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "random";
  int64_t kind = int_arg(c, 0, op, "kind", 0, 2);
  int64_t n = int_arg(c, 1, op, "n", 0, kMaxSize);
  uint64_t seed = uint64_t(int_arg(c, 2, op, "seedLo", 0, UINT32_MAX)) | (uint64_t(int_arg(c, 3, op, "seedHi", 0, UINT32_MAX)) << 32);
  uint64_t offset = static_cast<uint64_t>(int_arg(c, 4, op, "offset", 0, int64_t(1) << 53));
  TensorRef o = cpu_arg(info, c, 0, 7, op, "output");
  need_elems(o, n, op, "output");
  if (kind == 2) {
    need_dtype(o, cpu::DType::I32, op, "output");
    int64_t lo = int_arg(c, 5, op, "low", INT32_MIN, INT32_MAX), hi = int_arg(c, 6, op, "high", lo + 1, int64_t(INT32_MAX) + 1);
    if (hi - lo > (int64_t(1) << 24)) fail("INVALID_ARGUMENT", "randint: high - low must be at most 2^24");
    cpu::philox_randint(P<int32_t>(o), n, seed, offset, static_cast<int32_t>(lo), static_cast<int32_t>(hi));
  } else if (kind == 0) {
    KILN_FLOAT_DISPATCH(o.dtype, op, cpu::philox_uniform<T>(P<T>(o), n, seed, offset, T(c.args[5]), T(c.args[6])));
  } else {
    KILN_FLOAT_DISPATCH(o.dtype, op, cpu::philox_normal<T>(P<T>(o), n, seed, offset, T(c.args[5]), T(c.args[6])));
  }
  return info.Env().Undefined();
}

// Returns the first position whose index is outside [lo, hi) (and not `allowed`), or -1.
Napi::Value find_invalid(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "indices";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  TensorRef idx = cpu_arg(info, c, 0, 4, op, "indices");
  need_dtype(idx, cpu::DType::I32, op, "indices");
  need_elems(idx, n, op, "indices");
  int64_t bad = cpu::find_invalid_index(P<int32_t>(idx), n, static_cast<int32_t>(int_arg(c, 1, op, "lo", INT32_MIN, INT32_MAX)),
                                        static_cast<int32_t>(int_arg(c, 2, op, "hi", INT32_MIN, int64_t(INT32_MAX))),
                                        static_cast<int32_t>(int_arg(c, 3, op, "allowed", INT32_MIN, INT32_MAX)));
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "reduce", reduce);
  KILN_EXPORT(exports, "argReduce", arg_reduce);
  KILN_EXPORT(exports, "cumsum", cumsum);
  KILN_EXPORT(exports, "topk", topk);
  KILN_EXPORT(exports, "softmax", softmax);
  KILN_EXPORT(exports, "layerNormForward", layernorm_forward);
  KILN_EXPORT(exports, "layerNormBackward", layernorm_backward);
  KILN_EXPORT(exports, "crossEntropyForward", cross_entropy_forward);
  KILN_EXPORT(exports, "crossEntropyBackward", cross_entropy_backward);
  KILN_EXPORT(exports, "embedding", embedding);
  KILN_EXPORT(exports, "random", random);
  KILN_EXPORT(exports, "findInvalidIndex", find_invalid);
}

}  // namespace native
}  // namespace kiln
