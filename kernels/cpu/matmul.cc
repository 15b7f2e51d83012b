// CPU GEMM and Linear forward/backward on Eigen, split across OpenMP threads by blocks of C.
#include "kernels/matmul.h"

#include "kernels/bias.h"
#include "kernels/cpu/common.h"
#include "core/error.h"

namespace tessera::kernels::cpu {
namespace {

using detail::mat;

struct GemmArgs {
  bool trans_a;
  bool trans_b;
  int64_t K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

// The block C[m0:m1, n0:n1] of the GEMM, on the calling thread.
void gemm_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  auto c = mat(g.C + m0 * g.ldc + n0, m1 - m0, n1 - n0, g.ldc);
  // BLAS semantics: with beta == 0, C is not read (it may hold NaNs).
  if (g.beta == 0.0f) {
    c.setZero();
  } else if (g.beta != 1.0f) {
    c *= g.beta;
  }
  if (g.K == 0 || g.alpha == 0.0f) return;
  const int64_t m = m1 - m0, n = n1 - n0;
  if (!g.trans_a && !g.trans_b) {
    c.noalias() += g.alpha * mat(g.A + m0 * g.lda, m, g.K, g.lda) * mat(g.B + n0, g.K, n, g.ldb);
  } else if (!g.trans_a && g.trans_b) {
    c.noalias() += g.alpha * mat(g.A + m0 * g.lda, m, g.K, g.lda) *
                   mat(g.B + n0 * g.ldb, n, g.K, g.ldb).transpose();
  } else if (g.trans_a && !g.trans_b) {
    c.noalias() += g.alpha * mat(g.A + m0, g.K, m, g.lda).transpose() *
                   mat(g.B + n0, g.K, n, g.ldb);
  } else {
    c.noalias() += g.alpha * mat(g.A + m0, g.K, m, g.lda).transpose() *
                   mat(g.B + n0 * g.ldb, n, g.K, g.ldb).transpose();
  }
}

// Runs fn(m0, m1, n0, n1) on disjoint blocks of an M x N output, one per thread. The longer
// side is split so every block keeps enough rows/columns for Eigen's register tiles.
template <class Fn>
void for_output_blocks(int64_t M, int64_t N, int64_t K, Fn&& fn) {
  const int threads = detail::threads_for(M * N * std::max<int64_t>(K, 1));
  if (M >= N) {
    detail::parallel_ranges(M, threads, [&](int64_t m0, int64_t m1) { fn(m0, m1, 0, N); }, 8);
  } else {
    detail::parallel_ranges(N, threads, [&](int64_t n0, int64_t n1) { fn(0, M, n0, n1); }, 16);
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  TESSERA_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M={} N={} K={}", M, N, K);
  TESSERA_CHECK(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
                "gemm: leading dimension too small (lda={} ldb={} ldc={})", lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  const GemmArgs g{trans_a, trans_b, K, alpha, A, lda, B, ldb, beta, C, ldc};
  for_output_blocks(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    gemm_block(g, m0, m1, n0, n1);
  });
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int64_t rows, int64_t in_features, int64_t out_features) {
  if (rows == 0 || out_features == 0) return;
  const GemmArgs g{false, true, in_features, 1.0f, inp, in_features, weight, in_features,
                   1.0f, out, out_features};
  for_output_blocks(rows, out_features, in_features,
                    [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
                      // The block starts as the bias rows and the product accumulates onto
                      // them (beta = 1): the bias replaces the zeroing instead of adding a pass.
                      auto o = mat(out + m0 * out_features + n0, m1 - m0, n1 - n0, out_features);
                      if (bias) {
                        o.rowwise() = Eigen::Map<const Eigen::RowVectorXf>(bias + n0, n1 - n0);
                      } else {
                        o.setZero();
                      }
                      gemm_block(g, m0, m1, n0, n1);
                    });
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t rows, int64_t in_features, int64_t out_features) {
  if (dinp) {
    gemm(false, false, rows, in_features, out_features, 1.0f, dout, out_features, weight,
         in_features, 0.0f, dinp, in_features);
  }
  gemm(true, false, out_features, in_features, rows, 1.0f, dout, out_features, inp, in_features,
       1.0f, dweight, in_features);
  if (dbias) bias_backward(dbias, dout, rows, out_features);
}

}  // namespace tessera::kernels::cpu
