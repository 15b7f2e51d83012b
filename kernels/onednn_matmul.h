// Matrix multiply through oneDNN's matmul primitive (Debian's libdnnl), in float32, bfloat16
// or float16 inputs with float32 accumulation and a float32 result. On CPUs with AVX-512 BF16
// or AMX oneDNN picks its brgemm kernels, which run bf16 at about twice the fp32 rate; this is
// the GEMM the mixed-precision training path uses. Eigen's kernels/matmul.h stays the fp32
// reference.
#pragma once

#include <cstdint>
#include <string>

namespace tessera::kernels::onednn {

enum class ElemType { F32, BF16, F16 };

// C[M,N] (+)= op(A) * op(B) (+ bias[N]), row-major with leading dimensions lda/ldb/ldc, op(X) = X
// or X^T as in kernels::cpu::gemm. A and B share one element type; C and bias are float32.
struct MatmulShape {
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;
  ElemType type = ElemType::F32;
  bool has_bias = false;
  bool accumulate = false;  // C += A*B (a sum post-op) instead of C = A*B
  bool operator==(const MatmulShape&) const = default;
};

// Runs products on the CPU. The primitive of each distinct shape is created once and kept
// (creating one costs ~100 us, as much as a small product); a training step uses a few dozen
// shapes. Safe to call from several threads.
class Matmul {
 public:
  Matmul();
  ~Matmul();
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;

  void run(const MatmulShape& shape, const void* A, const void* B, const float* bias, float* C);
  // oneDNN's name of the kernel it runs for a shape (e.g. "brg:avx512_core_bf16"): for the
  // start-up warning when bf16 runs emulated, and for benchmark reports.
  std::string implementation_name(const MatmulShape& shape);
  int cached_primitives() const;

 private:
  struct State;
  State* state_;
};

// Whether this CPU executes bf16 products natively (AVX-512 BF16 or AMX) rather than through
// oneDNN's slower fp32 emulation.
bool native_bf16();

}  // namespace tessera::kernels::onednn
