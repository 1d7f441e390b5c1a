// Reductions over the middle axis of [outer, r, inner], arg-reductions, cumsum and top-k.
// Float sums and products accumulate in double. inner == 1 reduces contiguous rows (split into
// fixed 64k-element chunks combined in order, so huge rows use every core and results do not depend
// on the thread count); inner > 1 walks 256-wide column tiles so the inner loop is contiguous.
// Max/Min/LogSumExp propagate NaN; LogSumExp of an all -inf slice is -inf; r == 0 gives the identity.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kTile = 256;          // inner-axis tile for column reductions
constexpr int64_t kRowChunk = 65536;    // row chunk for contiguous reductions

template <class T> bool is_nan(T v) { return v != v; }
template <class T> bool finite(T v) { return v - v == 0; }
template <class T> T nan_max(T a, T b) { return (b > a || b != b) ? b : a; }
template <class T> T nan_min(T a, T b) { return (b < a || b != b) ? b : a; }

// ---- contiguous spans ----
template <class T>
KILN_CLONES double span_sum(const T* x, int64_t n) {
  // 32 running sums (four AVX-512 registers of doubles): one sum's add latency would otherwise
  // bound the loop. The order is fixed by n alone, so results stay independent of threads.
  constexpr int64_t W = 32;
  double acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
#pragma omp simd
    for (int64_t k = 0; k < W; ++k) acc[k] += x[i + k];
  }
  double s = 0;
  for (; i < n; ++i) s += x[i];
  for (int64_t k = 0; k < W; ++k) s += acc[k];
  return s;
}
template <class T>
KILN_CLONES double span_prod(const T* x, int64_t n) {
  double p = 1;
#pragma omp simd reduction(* : p)
  for (int64_t i = 0; i < n; ++i) p *= x[i];
  return p;
}
template <class T>
KILN_CLONES T span_max(const T* x, int64_t n, bool isMax) {
  T m = isMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  int nan = 0;
  if (isMax) {
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int64_t i = 0; i < n; ++i) { m = x[i] > m ? x[i] : m; nan |= x[i] != x[i]; }
  } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
    for (int64_t i = 0; i < n; ++i) { m = x[i] < m ? x[i] : m; nan |= x[i] != x[i]; }
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}
template <class T>
KILN_CLONES double span_sumexp(const T* x, int64_t n, T shift) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += vmath::vexp(x[i] - shift);
  return s;
}

template <class T>
void reduce_rows(ReduceOp op, const T* x, T* y, int64_t outer, int64_t r) {
  const int64_t nch = (r + kRowChunk - 1) / kRowChunk;
  const bool extreme = op == ReduceOp::Max || op == ReduceOp::Min || op == ReduceOp::LogSumExp;
  std::vector<double> part(outer * nch);
  std::vector<T> ext(extreme ? outer * nch : 0), rowmax(op == ReduceOp::LogSumExp ? outer : 0);
  auto chunk = [&](int64_t t, int64_t* len) {
    int64_t o = t / nch, c = t % nch;
    *len = std::min(kRowChunk, r - c * kRowChunk);
    return x + o * r + c * kRowChunk;
  };
  if (extreme) {
    parallel_tasks(outer * nch, outer * r, [&](int64_t t) {
      int64_t len;
      const T* p = chunk(t, &len);
      ext[t] = span_max(p, len, op != ReduceOp::Min);
    });
  }
  if (op == ReduceOp::LogSumExp) {
    for (int64_t o = 0; o < outer; ++o) {
      T m = ext[o * nch];
      for (int64_t c = 1; c < nch; ++c) m = nan_max(m, ext[o * nch + c]);
      rowmax[o] = m;
    }
  }
  if (!extreme || op == ReduceOp::LogSumExp) {
    parallel_tasks(outer * nch, outer * r * (op == ReduceOp::LogSumExp ? 8 : 1), [&](int64_t t) {
      int64_t len;
      const T* p = chunk(t, &len);
      if (op == ReduceOp::Prod) part[t] = span_prod(p, len);
      else if (op == ReduceOp::LogSumExp) {
        T m = rowmax[t / nch];
        part[t] = finite(m) ? span_sumexp(p, len, m) : 0.0;
      } else part[t] = span_sum(p, len);
    });
  }
  for (int64_t o = 0; o < outer; ++o) {
    const double* pp = &part[o * nch];
    if (op == ReduceOp::Max || op == ReduceOp::Min) {
      T m = ext[o * nch];
      for (int64_t c = 1; c < nch; ++c)
        m = op == ReduceOp::Max ? nan_max(m, ext[o * nch + c]) : nan_min(m, ext[o * nch + c]);
      y[o] = m;
    } else if (op == ReduceOp::LogSumExp) {
      double s = 0;
      for (int64_t c = 0; c < nch; ++c) s += pp[c];
      T m = rowmax[o];
      y[o] = finite(m) ? static_cast<T>(m + std::log(s)) : m;
    } else if (op == ReduceOp::Prod) {
      double p = 1;
      for (int64_t c = 0; c < nch; ++c) p *= pp[c];
      y[o] = static_cast<T>(p);
    } else {
      double s = 0;
      for (int64_t c = 0; c < nch; ++c) s += pp[c];
      y[o] = static_cast<T>(op == ReduceOp::Mean ? s / static_cast<double>(r) : s);
    }
  }
}

// One [r, w] column tile (row stride `inner`) reduced into y[0..w).
template <class T>
KILN_CLONES void reduce_tile(ReduceOp op, const T* x, T* y, int64_t r, int64_t inner, int64_t w) {
  double acc[kTile];
  T m[kTile];
  if (op == ReduceOp::Max || op == ReduceOp::Min || op == ReduceOp::LogSumExp) {
    const bool isMax = op != ReduceOp::Min;
    for (int64_t j = 0; j < w; ++j) m[j] = x[j];
    for (int64_t k = 1; k < r; ++k) {
      const T* row = x + k * inner;
      if (isMax) {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) m[j] = nan_max(m[j], row[j]);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) m[j] = nan_min(m[j], row[j]);
      }
    }
    if (op != ReduceOp::LogSumExp) {
      for (int64_t j = 0; j < w; ++j) y[j] = m[j];
      return;
    }
    T shift[kTile];
    for (int64_t j = 0; j < w; ++j) { shift[j] = finite(m[j]) ? m[j] : T(0); acc[j] = 0; }
    for (int64_t k = 0; k < r; ++k) {
      const T* row = x + k * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) acc[j] += vmath::vexp(row[j] - shift[j]);
    }
    for (int64_t j = 0; j < w; ++j) y[j] = finite(m[j]) ? static_cast<T>(m[j] + std::log(acc[j])) : m[j];
    return;
  }
  const bool prod = op == ReduceOp::Prod;
  for (int64_t j = 0; j < w; ++j) acc[j] = prod ? 1.0 : 0.0;
  for (int64_t k = 0; k < r; ++k) {
    const T* row = x + k * inner;
    if (prod) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) acc[j] *= row[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) acc[j] += row[j];
    }
  }
  const double scale = op == ReduceOp::Mean ? 1.0 / static_cast<double>(r) : 1.0;
  for (int64_t j = 0; j < w; ++j) y[j] = static_cast<T>(acc[j] * scale);
}

template <class T>
T identity(ReduceOp op) {
  const T inf = std::numeric_limits<T>::infinity();
  switch (op) {
    case ReduceOp::Prod: return T(1);
    case ReduceOp::Mean: return std::numeric_limits<T>::quiet_NaN();
    case ReduceOp::Max: case ReduceOp::LogSumExp: return -inf;
    case ReduceOp::Min: return inf;
    default: return T(0);
  }
}

}  // namespace

template <class T>
void reduce(ReduceOp op, const T* x, T* y, int64_t outer, int64_t r, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  if (r <= 0) {
    std::fill(y, y + outer * inner, identity<T>(op));
    return;
  }
  if (inner == 1) return reduce_rows(op, x, y, outer, r);
  const int64_t tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(outer * tiles, outer * r * inner, [&](int64_t t) {
    int64_t o = t / tiles, j0 = (t % tiles) * kTile;
    reduce_tile(op, x + o * r * inner + j0, y + o * inner + j0, r, inner, std::min(kTile, inner - j0));
  });
}

namespace {
constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
// Keeps the smallest index any thread reports, so the answer does not depend on scheduling.
void note_first(std::atomic<int64_t>& first, int64_t i) {
  int64_t cur = first.load(std::memory_order_relaxed);
  while (i < cur && !first.compare_exchange_weak(cur, i, std::memory_order_relaxed)) {
  }
}
template <class T> bool fits_i32(T v) { return v >= INT32_MIN && v <= INT32_MAX; }
}  // namespace

int64_t reduce_i32(ReduceOp op, const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner) {
  std::atomic<int64_t> first{kNone};
  parallel_tasks(outer, outer * r * inner, [&](int64_t o) {
    const int32_t* xo = x + o * r * inner;
    int32_t* yo = y + o * inner;
    if (op != ReduceOp::Sum) {
      const bool isMax = op == ReduceOp::Max;
      for (int64_t j = 0; j < inner; ++j) yo[j] = r > 0 ? xo[j] : (isMax ? INT32_MIN : INT32_MAX);
      for (int64_t k = 1; k < r; ++k)
        for (int64_t j = 0; j < inner; ++j) {
          const int32_t v = xo[k * inner + j];
          yo[j] = isMax ? std::max(yo[j], v) : std::min(yo[j], v);
        }
      return;
    }
    // Exact: chunks of 2^31 terms cannot overflow an int64, and their sums add up in 128 bits.
    constexpr int64_t kChunk = int64_t(1) << 31;
    for (int64_t j0 = 0; j0 < inner; j0 += kTile) {
      const int64_t w = std::min(kTile, inner - j0);
      __int128 total[kTile];
      int64_t part[kTile];
      for (int64_t j = 0; j < w; ++j) total[j] = 0;
      for (int64_t k0 = 0; k0 < r; k0 += kChunk) {
        for (int64_t j = 0; j < w; ++j) part[j] = 0;
        for (int64_t k = k0, k1 = std::min(r, k0 + kChunk); k < k1; ++k)
          for (int64_t j = 0; j < w; ++j) part[j] += xo[k * inner + j0 + j];
        for (int64_t j = 0; j < w; ++j) total[j] += part[j];
      }
      for (int64_t j = 0; j < w; ++j) {
        if (fits_i32(total[j])) {
          yo[j0 + j] = static_cast<int32_t>(total[j]);
        } else {
          yo[j0 + j] = 0;
          note_first(first, o * inner + j0 + j);
        }
      }
    }
  });
  const int64_t f = first.load();
  return f == kNone ? -1 : f;
}

int64_t cumsum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, bool reverse) {
  if (r <= 0 || inner <= 0) return -1;
  std::atomic<int64_t> first{kNone};
  const int64_t tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(outer * tiles, outer * r * inner, [&](int64_t t) {
    const int64_t o = t / tiles, j0 = (t % tiles) * kTile, w = std::min(kTile, inner - j0);
    const int64_t base = o * r * inner + j0;
    // Every partial sum is an output, so int64 is exact up to the first one that does not fit
    // int32 (each step adds less than 2^31); past it the sums wrap (unsigned, defined) unread.
    uint64_t acc[kTile] = {};
    for (int64_t s = 0; s < r; ++s) {
      const int64_t k = reverse ? r - 1 - s : s;
      for (int64_t j = 0; j < w; ++j) {
        acc[j] += static_cast<uint64_t>(static_cast<int64_t>(x[base + k * inner + j]));
        const int64_t v = static_cast<int64_t>(acc[j]);
        y[base + k * inner + j] = static_cast<int32_t>(static_cast<uint32_t>(acc[j]));
        if (!fits_i32(v)) note_first(first, base + k * inner + j);
      }
    }
  });
  const int64_t f = first.load();
  return f == kNone ? -1 : f;
}

// ---- arg max / arg min: first index of the extreme; the first NaN wins over everything ----
namespace {
template <class T>
KILN_CLONES void arg_tile(bool isMax, const T* x, int32_t* idx, int64_t r, int64_t inner, int64_t w) {
  T best[kTile];
  int32_t at[kTile];
  for (int64_t j = 0; j < w; ++j) { best[j] = x[j]; at[j] = 0; }
  for (int64_t k = 1; k < r; ++k) {
    const T* row = x + k * inner;
    const int32_t kk = static_cast<int32_t>(k);
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
      T v = row[j], b = best[j];
      bool take = (isMax ? v > b : v < b) || (v != v && b == b);
      best[j] = take ? v : b;
      at[j] = take ? kk : at[j];
    }
  }
  for (int64_t j = 0; j < w; ++j) idx[j] = at[j];
}
}  // namespace

template <class T>
void arg_reduce(bool isMax, const T* x, int32_t* idx, int64_t outer, int64_t r, int64_t inner) {
  if (r <= 0) {
    std::fill(idx, idx + outer * inner, 0);
    return;
  }
  if (inner == 1) {
    parallel_tasks(outer, outer * r, [&](int64_t o) {
      const T* row = x + o * r;
      T m = span_max(row, r, isMax);  // vectorised pass for the value, then a short scan for its index
      int64_t k = 0;
      if (is_nan(m)) while (!is_nan(row[k])) ++k;
      else while (row[k] != m) ++k;
      idx[o] = static_cast<int32_t>(k);
    });
    return;
  }
  const int64_t tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(outer * tiles, outer * r * inner, [&](int64_t t) {
    int64_t o = t / tiles, j0 = (t % tiles) * kTile;
    arg_tile(isMax, x + o * r * inner + j0, idx + o * inner + j0, r, inner, std::min(kTile, inner - j0));
  });
}

// ---- inclusive cumulative sum (double accumulator for float) ----
template <class T>
void cumsum(const T* x, T* y, int64_t outer, int64_t r, int64_t inner, bool reverse) {
  if (r <= 0 || inner <= 0) return;
  if (inner == 1 && outer >= 2) {
    // Along contiguous rows: one row's sums are a chain of dependent adds, so 8 rows advance
    // together (8 independent chains), each row's sums in the same order as alone.
    constexpr int64_t G = 8;
    const int64_t groups = (outer + G - 1) / G;
    parallel_tasks(groups, outer * r, [&](int64_t t) {
      const int64_t o0 = t * G, g = std::min(G, outer - o0);
      double acc[G] = {};
      for (int64_t s = 0; s < r; ++s) {
        const int64_t k = reverse ? r - 1 - s : s;
        for (int64_t j = 0; j < g; ++j) {
          acc[j] += x[(o0 + j) * r + k];
          y[(o0 + j) * r + k] = static_cast<T>(acc[j]);
        }
      }
    });
    return;
  }
  const int64_t tiles = (inner + kTile - 1) / kTile;
  parallel_tasks(outer * tiles, outer * r * inner, [&](int64_t t) {
    const int64_t o = t / tiles, j0 = (t % tiles) * kTile, w = std::min(kTile, inner - j0);
    const T* xo = x + o * r * inner + j0;
    T* yo = y + o * r * inner + j0;
    double acc[kTile] = {};
    for (int64_t s = 0; s < r; ++s) {
      const int64_t k = reverse ? r - 1 - s : s;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        acc[j] += xo[k * inner + j];
        yo[k * inner + j] = static_cast<T>(acc[j]);
      }
    }
  });
}

// ---- top-k along the last axis: a k-heap with one compare to reject most elements ----
template <class T>
void topk(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, int64_t k, bool largest) {
  if (k <= 0 || n <= 0) return;
  k = std::min(k, n);
  using Item = std::pair<T, int32_t>;
  // `before(a, b)`: a is ranked ahead of b (NaN ranks as the largest; ties by lower index).
  auto before = [largest](const Item& a, const Item& b) {
    bool an = a.first != a.first, bn = b.first != b.first;
    if (an || bn) {
      if (an && bn) return a.second < b.second;
      return largest ? an : bn;
    }
    if (a.first != b.first) return largest ? a.first > b.first : a.first < b.first;
    return a.second < b.second;
  };
  parallel_tasks(rows, rows * n * 2, [&](int64_t row) {
    const T* xr = x + row * n;
    std::vector<Item> heap;
    heap.reserve(k);
    for (int64_t i = 0; i < k; ++i) heap.emplace_back(xr[i], static_cast<int32_t>(i));
    std::make_heap(heap.begin(), heap.end(), before);  // front = the worst kept item
    for (int64_t i = k; i < n; ++i) {
      Item c(xr[i], static_cast<int32_t>(i));
      if (!before(c, heap.front())) continue;
      std::pop_heap(heap.begin(), heap.end(), before);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), before);
    }
    std::sort_heap(heap.begin(), heap.end(), before);  // ascending in `before` = best first
    for (int64_t i = 0; i < k; ++i) {
      values[row * k + i] = heap[i].first;
      indices[row * k + i] = heap[i].second;
    }
  });
}

#define KILN_REDUCE_INSTANTIATE(T)                                                            \
  template void reduce<T>(ReduceOp, const T*, T*, int64_t, int64_t, int64_t);                 \
  template void arg_reduce<T>(bool, const T*, int32_t*, int64_t, int64_t, int64_t);            \
  template void cumsum<T>(const T*, T*, int64_t, int64_t, int64_t, bool);                      \
  template void topk<T>(const T*, T*, int32_t*, int64_t, int64_t, int64_t, bool);
KILN_REDUCE_INSTANTIATE(float)
KILN_REDUCE_INSTANTIATE(double)
#undef KILN_REDUCE_INSTANTIATE

}  // namespace cpu
}  // namespace kiln
