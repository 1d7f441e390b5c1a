// Sort along the last axis, and gather / scatter-add along any axis (select.cc). Pure compute on raw
// pointers; native/ops.cc checks every extent before calling.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// Sorts each row of a contiguous [rows, n] array: values and the int32 positions they came from.
// Ascending or descending, stable (equal values keep index order in both directions, -0 == +0), NaN
// the largest value (last ascending, first descending): the order of topk with k = n.
template <class T>
void sort_rows(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, bool descending);

// One gather or scatter-add along `axis` over the positions p of `shape` (the index's shape, ndim in
// [1, 8]); strides are in elements, any non-negative value (0 broadcasts):
//   gather:      dense[p] = data[p with p[axis] = idx[p]]
//   scatter-add: data[p with p[axis] = idx[p]] += dense[p]
// `n` is data's extent along axis: an index outside [0, n) is skipped and reported (the return value
// is -1, or the smallest row-major position of `shape` holding a bad index; outputs are then partial).
struct AxisGeometry {
  int ndim, axis;
  int64_t n;
  int64_t shape[8];
  int64_t dataStride[8];
  int64_t idxStride[8];
  int64_t denseStride[8];
};
// T is moved as bits: instantiated for uint16_t, uint32_t and uint64_t (every dtype by its size).
template <class T>
int64_t gather_axis(const T* data, const int32_t* idx, T* dense, const AxisGeometry& g);
// float / double. Each element of data sums its contributions in index order from its current value,
// whatever the thread count (threads own disjoint (outer, inner) positions; no atomics). With
// overlapping data strides (distinct positions aliasing one element) the result is unspecified.
template <class T>
int64_t scatter_add_axis(T* data, const int32_t* idx, const T* dense, const AxisGeometry& g);

}  // namespace cpu
}  // namespace kiln
