// Helpers of the [cuda] tests: the GPU guard, device arrays (outputs poisoned with NaN so an
// unwritten element fails), a stream, seeded random inputs, host bf16 rounding, and the
// normalised max error every CUDA kernel is compared with its CPU twin by.
#pragma once

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace tessera::cuda_testing {

// Whether main found a CUDA device (it printed the skip message when not).
bool device_available();

}  // namespace tessera::cuda_testing

// First statement of every [cuda] test case: without a GPU the case ends here, passing with no
// assertions (Catch2 v2 has no SKIP; main prints one message for all of them).
#define TESSERA_REQUIRE_GPU()                                         \
  do {                                                                \
    if (!::tessera::cuda_testing::device_available()) return;         \
  } while (0)

namespace tessera::cuda_testing {

// A device copy of a host vector, freed on scope exit. The tests launch on a non-blocking
// Stream, which does not wait for the legacy default stream that cudaMemcpy and cudaMemset use:
// a pageable cudaMemcpy returns once the data is staged, not copied, and cudaMemset returns at
// once. So every upload and fill waits for the legacy stream before returning, and the data is
// in place for work enqueued afterwards on any stream; every read-back first waits for the
// whole device, so the result of work on any stream is complete when it is read.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : n_(host.size()) {
    TESSERA_CUDA_CHECK(cudaMalloc(&ptr_, bytes()));
    upload(host);
  }
  // n elements with every byte 0xFF: NaN for float and bf16, -1 for integers.
  static DeviceArray poisoned(size_t n) {
    DeviceArray a(n);
    TESSERA_CUDA_CHECK(cudaMemset(a.ptr_, 0xFF, a.bytes()));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
    return a;
  }
  DeviceArray(DeviceArray&& other) noexcept : ptr_(other.ptr_), n_(other.n_) {
    other.ptr_ = nullptr;
    other.n_ = 0;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray& operator=(DeviceArray&&) = delete;
  ~DeviceArray() { cudaFree(ptr_); }

  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == n_);
    if (n_ == 0) return;
    TESSERA_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  }
  // Synchronous: waits for the work on every stream, then copies.
  std::vector<T> to_host() const {
    std::vector<T> host(n_);
    if (n_ == 0) return host;
    TESSERA_CUDA_CHECK(cudaDeviceSynchronize());
    TESSERA_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  explicit DeviceArray(size_t n) : n_(n) { TESSERA_CUDA_CHECK(cudaMalloc(&ptr_, bytes())); }
  // Allocated bytes: cudaMalloc(0) returns no pointer, so empty arrays get one spare element.
  size_t bytes() const { return std::max<size_t>(n_, 1) * sizeof(T); }

  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// A non-blocking stream, so the tests exercise the launchers' explicit streams rather than the
// legacy default stream's implicit ordering.
class Stream {
 public:
  Stream() { TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  // Waits for the stream and surfaces any asynchronous kernel error.
  void sync() const { TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// float -> bf16 bits, round to nearest even; NaN -> a quiet NaN. The host reference for the
// device casts (__float2bfloat16_rn).
inline uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float from_bf16(uint16_t h) {
  const uint32_t bits = uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_bf16(v[i]);
  return out;
}

inline std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_bf16(v[i]);
  return out;
}

// The normalised max error max_i |got_i - want_i| / max_i |want_i| (the denominator is 1 when
// `want` is all zeros), as ggml's backend tests compare against the CPU. Scale-free, so one
// tolerance fits inputs of any magnitude; a NaN anywhere (an unwritten, poisoned element)
// makes it infinite.
inline double normalised_error(const std::vector<float>& got, const std::vector<float>& want,
                               size_t* worst = nullptr) {
  double max_err = 0.0, max_ref = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::abs(static_cast<double>(got[i]) - want[i]);
    if (std::isnan(err)) err = INFINITY;
    if (err > max_err) {
      max_err = err;
      worst_i = i;
    }
    max_ref = std::max(max_ref, std::abs(static_cast<double>(want[i])));
  }
  if (worst) *worst = worst_i;
  return max_err / (max_ref > 0.0 ? max_ref : 1.0);
}

inline void check_normalised(const std::string& what, const std::vector<float>& got,
                             const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  size_t worst = 0;
  const double err = normalised_error(got, want, &worst);
  INFO(what << ": normalised max error " << err << " (tolerance " << tol << "), worst element "
            << worst << " of " << want.size() << ": got "
            << (want.empty() ? 0.0f : got[worst]) << ", expected "
            << (want.empty() ? 0.0f : want[worst]));
  CHECK(err <= tol);
}

}  // namespace tessera::cuda_testing
