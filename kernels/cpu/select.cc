// Row sort and axis gather / scatter-add (select.h states the contracts).
// sort: every value becomes an unsigned key whose order is the wanted one (sign-flipped IEEE bits,
// -0 as +0, NaN the largest key, all bits inverted for descending), and the (key, position) pairs go
// through an LSD radix sort, which is stable, so ties keep index order. Short rows use insertion sort.
// gather / scatter-add: the index's positions split as [rows, m, inner] around the axis, with offset
// tables for the rows and inner parts of each operand; a task owns one row and a block of inner
// positions for every j, so scatter-add targets never cross tasks and each sums in index order.
#include "select.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include "parallel.h"

namespace kiln {
namespace cpu {
namespace {

inline uint32_t order_key(float v) {
  if (v != v) return 0xffffffffu;
  const float z = v == 0.0f ? 0.0f : v;
  uint32_t u;
  std::memcpy(&u, &z, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t order_key(double v) {
  if (v != v) return ~uint64_t(0);
  const double z = v == 0.0 ? 0.0 : v;
  uint64_t u;
  std::memcpy(&u, &z, sizeof u);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// Rows up to this long use insertion sort: below it the radix histograms cost more than they save.
constexpr int64_t kInsertionMax = 48;

template <class K>
void insertion_sort(K* key, int32_t* id, int64_t n) {
  for (int64_t i = 1; i < n; ++i) {
    const K k = key[i];
    const int32_t d = id[i];
    int64_t j = i;
    for (; j > 0 && key[j - 1] > k; --j) {  // strict: an equal key stays after its predecessor
      key[j] = key[j - 1];
      id[j] = id[j - 1];
    }
    key[j] = k;
    id[j] = d;
  }
}

// Byte-wise LSD radix sort of (key, id) pairs, a pass skipped where every key has the same byte;
// (key2, id2) is scratch. Returns the ids in sorted order (in id or id2).
template <class K>
const int32_t* radix_sort(K* key, int32_t* id, K* key2, int32_t* id2, int64_t n) {
  constexpr int kBytes = sizeof(K);
  int64_t hist[kBytes][256] = {};
  for (int64_t i = 0; i < n; ++i) {
    const K k = key[i];
    for (int b = 0; b < kBytes; ++b) ++hist[b][(k >> (8 * b)) & 255];
  }
  K *src = key, *dst = key2;
  int32_t *isrc = id, *idst = id2;
  for (int b = 0; b < kBytes; ++b) {
    const int shift = 8 * b;
    if (hist[b][(src[0] >> shift) & 255] == n) continue;
    int64_t pos[256];
    for (int64_t d = 0, acc = 0; d < 256; ++d) {
      pos[d] = acc;
      acc += hist[b][d];
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = pos[(src[i] >> shift) & 255]++;
      dst[j] = src[i];
      idst[j] = isrc[i];
    }
    std::swap(src, dst);
    std::swap(isrc, idst);
  }
  return isrc;
}

template <class T> struct KeyOf;
template <> struct KeyOf<float> { using type = uint32_t; };
template <> struct KeyOf<double> { using type = uint64_t; };

// Offsets under `stride` of every position of dims [lo, hi) of `shape`, in row-major order.
std::vector<int64_t> offsets(const int64_t* shape, const int64_t* stride, int lo, int hi) {
  int64_t total = 1;
  for (int d = lo; d < hi; ++d) total *= shape[d];
  std::vector<int64_t> out(static_cast<size_t>(total));
  int64_t count[8] = {}, off = 0;
  for (int64_t p = 0; p < total; ++p) {
    out[p] = off;
    for (int d = hi - 1; d >= lo; --d) {
      if (++count[d] < shape[d]) {
        off += stride[d];
        break;
      }
      off -= (shape[d] - 1) * stride[d];
      count[d] = 0;
    }
  }
  return out;
}

template <bool kScatter, class T>
int64_t along_axis(T* data, const int32_t* idx, T* dense, const AxisGeometry& g) {
  const int a = g.axis;
  int64_t rows = 1, inner = 1;
  for (int d = 0; d < a; ++d) rows *= g.shape[d];
  for (int d = a + 1; d < g.ndim; ++d) inner *= g.shape[d];
  const int64_t m = g.shape[a], total = rows * m * inner;
  if (total == 0) return -1;
  const std::vector<int64_t> rowData = offsets(g.shape, g.dataStride, 0, a), rowIdx = offsets(g.shape, g.idxStride, 0, a),
                             rowDense = offsets(g.shape, g.denseStride, 0, a);
  const std::vector<int64_t> inData = offsets(g.shape, g.dataStride, a + 1, g.ndim), inIdx = offsets(g.shape, g.idxStride, a + 1, g.ndim),
                             inDense = offsets(g.shape, g.denseStride, a + 1, g.ndim);
  // Enough tasks to share a few threads when there are few rows; blocks of at least 64 positions.
  int64_t blocks = 1;
  if (rows < 16) blocks = std::max<int64_t>(1, std::min((16 + rows - 1) / rows, (inner + 63) / 64));
  const int64_t block = (inner + blocks - 1) / blocks;
  blocks = (inner + block - 1) / block;
  const int64_t tasks = rows * blocks, n = g.n, dA = g.dataStride[a], iA = g.idxStride[a], sA = g.denseStride[a];
  std::vector<int64_t> firstBad(static_cast<size_t>(tasks), INT64_MAX);
  parallel_tasks(tasks, total, [&](int64_t t) {
    const int64_t r = t / blocks, i0 = (t - r * blocks) * block, i1 = std::min(inner, i0 + block);
    const int64_t* __restrict iD = inData.data();
    const int64_t* __restrict iI = inIdx.data();
    const int64_t* __restrict iS = inDense.data();
    int64_t bad = INT64_MAX;
    T* dp = data + rowData[r];
    if (inner == 1) {  // along the last dim (or all dims after it of size 1): a plain loop over j
      const int32_t* ip = idx + rowIdx[r];
      T* sp = dense + rowDense[r];
      for (int64_t j = 0; j < m; ++j) {
        const int32_t v = ip[j * iA];
        if (static_cast<uint32_t>(v) >= static_cast<uint64_t>(n)) {  // negative values wrap past n
          bad = std::min(bad, r * m + j);
          continue;
        }
        if (kScatter) dp[v * dA] += sp[j * sA];
        else sp[j * sA] = dp[v * dA];
      }
    } else {
      for (int64_t j = 0; j < m; ++j) {
        const int32_t* ip = idx + rowIdx[r] + j * iA;
        T* sp = dense + rowDense[r] + j * sA;
        for (int64_t i = i0; i < i1; ++i) {
          const int32_t v = ip[iI[i]];
          if (static_cast<uint32_t>(v) >= static_cast<uint64_t>(n)) {
            bad = std::min(bad, (r * m + j) * inner + i);
            continue;
          }
          if (kScatter) dp[v * dA + iD[i]] += sp[iS[i]];
          else sp[iS[i]] = dp[v * dA + iD[i]];
        }
      }
    }
    firstBad[t] = bad;
  });
  const int64_t bad = *std::min_element(firstBad.begin(), firstBad.end());
  return bad == INT64_MAX ? -1 : bad;
}

}  // namespace

template <class T>
void sort_rows(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, bool descending) {
  if (rows <= 0 || n <= 0) return;
  using K = typename KeyOf<T>::type;
  const K flip = descending ? ~K(0) : K(0);  // inverted keys: descending, NaN first, ties still by index
  const int64_t chunks = std::min<int64_t>(rows, 64), per = (rows + chunks - 1) / chunks;
  parallel_tasks(chunks, rows * n * 4, [&](int64_t c) {
    std::vector<K> keys(static_cast<size_t>(2 * n));
    std::vector<int32_t> ids(static_cast<size_t>(2 * n));
    for (int64_t row = c * per; row < std::min(rows, (c + 1) * per); ++row) {
      const T* xr = x + row * n;
      for (int64_t i = 0; i < n; ++i) {
        keys[i] = order_key(xr[i]) ^ flip;
        ids[i] = static_cast<int32_t>(i);
      }
      const int32_t* order = ids.data();
      if (n <= kInsertionMax) insertion_sort(keys.data(), ids.data(), n);
      else order = radix_sort(keys.data(), ids.data(), keys.data() + n, ids.data() + n, n);
      T* vr = values + row * n;
      int32_t* ir = indices + row * n;
      for (int64_t i = 0; i < n; ++i) {
        vr[i] = xr[order[i]];
        ir[i] = order[i];
      }
    }
  });
}

template <class T>
int64_t gather_axis(const T* data, const int32_t* idx, T* dense, const AxisGeometry& g) {
  return along_axis<false>(const_cast<T*>(data), idx, dense, g);  // the gather only reads data
}

template <class T>
int64_t scatter_add_axis(T* data, const int32_t* idx, const T* dense, const AxisGeometry& g) {
  return along_axis<true>(data, idx, const_cast<T*>(dense), g);  // the scatter only reads dense
}

template void sort_rows<float>(const float*, float*, int32_t*, int64_t, int64_t, bool);
template void sort_rows<double>(const double*, double*, int32_t*, int64_t, int64_t, bool);
template int64_t gather_axis<uint16_t>(const uint16_t*, const int32_t*, uint16_t*, const AxisGeometry&);
template int64_t gather_axis<uint32_t>(const uint32_t*, const int32_t*, uint32_t*, const AxisGeometry&);
template int64_t gather_axis<uint64_t>(const uint64_t*, const int32_t*, uint64_t*, const AxisGeometry&);
template int64_t scatter_add_axis<float>(float*, const int32_t*, const float*, const AxisGeometry&);
template int64_t scatter_add_axis<double>(double*, const int32_t*, const double*, const AxisGeometry&);

}  // namespace cpu
}  // namespace kiln
