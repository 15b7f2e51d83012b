// Private helpers of the CPU kernels: Eigen views over raw row-major buffers and the OpenMP
// split of a range across threads, kept serial below the size where fork/join pays off.
#pragma once

#include <omp.h>

// GCC 12 reports its own AVX-512 intrinsics (`__m512 __Y = __Y;`) as (maybe-)uninitialized once
// Eigen's GEMM packing inlines them; the report is located in the headers, so this covers it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#include <algorithm>
#include <cstdint>

namespace tessera::kernels::cpu::detail {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<RowMajorMatrix, 0, Eigen::OuterStride<>>;
using ConstMatMap = Eigen::Map<const RowMajorMatrix, 0, Eigen::OuterStride<>>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

inline MatMap mat(float* p, int64_t rows, int64_t cols, int64_t ld) {
  return MatMap(p, rows, cols, Eigen::OuterStride<>(ld));
}
inline ConstMatMap mat(const float* p, int64_t rows, int64_t cols, int64_t ld) {
  return ConstMatMap(p, rows, cols, Eigen::OuterStride<>(ld));
}

// A fork/join of a warm OpenMP team costs a few microseconds, about the time one core needs
// for ~32k simple float operations; smaller calls stay on the calling thread.
inline constexpr int64_t kMinParallelWork = int64_t{1} << 15;

// Threads worth using for `work` elementary operations: 1 inside an enclosing parallel region.
inline int threads_for(int64_t work) {
  if (work < kMinParallelWork || omp_in_parallel()) return 1;
  return omp_get_max_threads();
}

// [begin, end) of part `i` of `parts` near-equal pieces of [0, n), boundaries rounded to a
// multiple of `align` so no SIMD vector straddles two pieces.
struct Range {
  int64_t begin;
  int64_t end;
};
inline Range split(int64_t n, int parts, int i, int64_t align = 16) {
  auto boundary = [&](int64_t k) {
    if (k >= parts) return n;
    const int64_t b = (n * k / parts) / align * align;
    return std::min(b, n);
  };
  return {boundary(i), boundary(i + 1)};
}

// Calls fn(begin, end) on disjoint pieces of [0, n) from `threads` threads (serially if 1).
template <class Fn>
void parallel_ranges(int64_t n, int threads, Fn&& fn, int64_t align = 16) {
  if (threads <= 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const Range r = split(n, omp_get_num_threads(), omp_get_thread_num(), align);
    if (r.begin < r.end) fn(r.begin, r.end);
  }
}

// parallel_ranges over n elements costing `cost_per_element` operations each.
template <class Fn>
void parallel_elements(int64_t n, int64_t cost_per_element, Fn&& fn) {
  parallel_ranges(n, threads_for(n * cost_per_element), fn);
}

}  // namespace tessera::kernels::cpu::detail
