// [cuda] test of the CUDA GELU kernels against the CPU ones. Compiled only into a test binary
// that links tessera_cuda_kernels; skipped with a warning on a machine without a GPU.
#include <catch2/catch.hpp>

#ifdef TESSERA_WITH_CUDA_KERNELS

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gelu_cuda.h"
#include "kernels/gelu.h"
#include "tests/unit/gradcheck.h"

using namespace tessera::testing;

namespace {

// A device copy of a host vector, freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const std::vector<float>& host) : n_(host.size()) {
    TESSERA_CUDA_CHECK(cudaMalloc(&ptr_, n_ * sizeof(float)));
    TESSERA_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), n_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr_); }
  float* get() const { return ptr_; }
  std::vector<float> to_host() const {
    std::vector<float> host(n_);
    TESSERA_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  float* ptr_ = nullptr;
  size_t n_;
};

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace

// Sizes: one element, one partial block, and more elements than the capped grid covers in one
// pass (4096 blocks x 256 threads), so the grid-stride loop is exercised.
TEST_CASE("kernel gelu cuda matches the cpu kernel", "[kernels][gelu][cuda]") {
  if (!have_gpu()) {
    WARN("no CUDA device: [cuda] gelu test skipped");
    return;
  }
  cudaStream_t stream = nullptr;
  TESSERA_CUDA_CHECK(cudaStreamCreate(&stream));
  for (size_t n : {size_t{1}, size_t{1000}, (size_t{1} << 20) + 7}) {
    CAPTURE(n);
    const std::vector<float> x = random_floats(n, 90, -5.0f, 5.0f), dy = random_floats(n, 91);
    std::vector<float> y_cpu(n), dx_cpu(n);
    tessera::kernels::cpu::gelu_forward(y_cpu.data(), x.data(), n);
    tessera::kernels::cpu::gelu_backward(dx_cpu.data(), x.data(), dy.data(), n);

    // Outputs start as NaN on the device so a launch that writes nothing fails.
    const std::vector<float> nans(n, NAN);
    const DeviceBuffer x_dev(x), dy_dev(dy), y_dev(nans), dx_dev(nans);
    tessera::kernels::cuda::gelu_forward(y_dev.get(), x_dev.get(), n, stream);
    tessera::kernels::cuda::gelu_backward(dx_dev.get(), x_dev.get(), dy_dev.get(), n, stream);
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));
    // Both sides are float with a few-ulp tanh (Eigen's rational approximation on the CPU,
    // tanhf on the GPU); the tolerances are those of the CPU kernel against double, whose
    // reasoning (cancellation near |x| = 5) applies to each side.
    check_close("cuda gelu forward", y_dev.to_host(), to_double(y_cpu), {1e-5, 2e-6});
    check_close("cuda gelu backward", dx_dev.to_host(), to_double(dx_cpu), {1e-4, 1e-5});
  }
  TESSERA_CUDA_CHECK(cudaStreamDestroy(stream));
}

#endif  // TESSERA_WITH_CUDA_KERNELS
