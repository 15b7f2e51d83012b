// Causal attention forward + backward through CpuBackend: the fp32 Eigen reference against the
// bf16 oneDNN kernel (kernels/onednn_attention.h), on one GPT shape, alternating the two every
// repeat so load from other users of a shared machine hits both; prints median and min-max
// milliseconds and the median ratio.
// Usage: bench_attention_backends [B T H D (default 8 256 8 64)] [repeats (default 11)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/compute/cpu_backend.h"
#include "runtime/host_memory.h"

namespace {

using tessera::CpuBackend;
using tessera::DType;
using tessera::Tensor;

// One forward + backward with the output in `out_dtype` (F32: the reference; BF16: the bf16 kernel).
double step_seconds(CpuBackend& be, DType out_dtype, const Tensor& qkv, const Tensor& dout, int64_t B, int64_t T,
                    int64_t H, int64_t D) {
  Tensor out = Tensor::empty({B * T, H * D}, out_dtype), dqkv = Tensor::empty(qkv.shape());
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor saved = be.attention_forward(out, qkv, B, T, H, D);
  be.attention_backward(dqkv, dout, qkv, saved, B, T, H, D);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t B = argc > 4 ? std::atoll(argv[1]) : 8, T = argc > 4 ? std::atoll(argv[2]) : 256;
  const int64_t H = argc > 4 ? std::atoll(argv[3]) : 8, D = argc > 4 ? std::atoll(argv[4]) : 64;
  const int repeats = argc > 5 ? std::atoi(argv[5]) : (argc == 2 ? std::atoi(argv[1]) : 11);
  tessera::retain_freed_host_memory();  // as the tessera executable does: no page faults per call
  CpuBackend be(tessera::CpuGemm::OneDnn);
  const Tensor qkv = Tensor::full({B * T, 3 * H * D}, 0.25f), dout = Tensor::full({B * T, H * D}, 0.5f);
  std::vector<double> f32, bf16;
  step_seconds(be, DType::F32, qkv, dout, B, T, H, D);  // warm-up: primitives, pages
  step_seconds(be, DType::BF16, qkv, dout, B, T, H, D);
  for (int r = 0; r < repeats; ++r) {
    f32.push_back(step_seconds(be, DType::F32, qkv, dout, B, T, H, D));
    bf16.push_back(step_seconds(be, DType::BF16, qkv, dout, B, T, H, D));
  }
  std::printf("attention fwd+bwd B=%lld T=%lld H=%lld D=%lld, %d repeats alternating\n", static_cast<long long>(B),
              static_cast<long long>(T), static_cast<long long>(H), static_cast<long long>(D), repeats);
  for (auto& [name, v] : {std::pair{"eigen fp32", &f32}, std::pair{"onednn bf16", &bf16}}) {
    std::printf("%-12s median %7.2f ms  min %7.2f  max %7.2f\n", name, 1e3 * median(*v),
                1e3 * *std::min_element(v->begin(), v->end()), 1e3 * *std::max_element(v->begin(), v->end()));
  }
  std::printf("eigen fp32 / onednn bf16: %.2fx\n", median(f32) / median(bf16));
  return 0;
}
