// The emulator's own tests: each check of the CPU emulation (emu.h) shown refusing, or exposing,
// a deliberately wrong kernel or runtime call (bad_kernels.cu), next to the correct use it lets
// through. Run as the CTest test cuda.emulator_checks.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "tests/cuda/emulator/bad_kernels.h"
#include "tests/cuda/emulator/emu.h"

using Catch::Matchers::Contains;

namespace {

// A device buffer of n floats, freed on scope exit.
struct Buffer {
  explicit Buffer(size_t n) : n(n) { REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess); }
  ~Buffer() { cudaFree(p); }
  std::vector<float> to_host() const {
    std::vector<float> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  float* get() const { return static_cast<float*>(p); }
  void* p = nullptr;
  size_t n;
};

// Restores the default schedule for the tests that follow.
struct OrderGuard {
  ~OrderGuard() { emu::set_order(emu::Order::Shuffled, 1); }
};

}  // namespace

TEST_CASE("emulator refuses a host pointer passed to a kernel", "[emulator]") {
  std::vector<float> host(100, 1.0f);
  CHECK_THROWS_WITH(emu_checks::scale(host.data(), 100),
                    Contains("pointer argument 1") && Contains("not device memory") &&
                        Contains("scale_kernel launched at tests/cuda/emulator/bad_kernels.cu"));
  Buffer device(100);
  REQUIRE(cudaMemcpy(device.p, host.data(), 400, cudaMemcpyHostToDevice) == cudaSuccess);
  emu_checks::scale(device.get(), 100);  // the control
  CHECK(device.to_host()[99] == 2.0f);
}

TEST_CASE("emulator refuses a freed device pointer passed to a kernel", "[emulator]") {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, 64) == cudaSuccess);
  REQUIRE(cudaFree(p) == cudaSuccess);
  CHECK_THROWS_WITH(emu_checks::scale(static_cast<float*>(p), 16), Contains("already freed"));
  CHECK(cudaFree(p) == cudaErrorInvalidValue);  // and a double free
  CHECK_THAT(cudaGetErrorString(cudaErrorInvalidValue), Contains("double free"));
}

TEST_CASE("emulator refuses copies whose kind does not match the pointers", "[emulator]") {
  Buffer device(16);
  std::vector<float> host(16, 3.0f), other(16);
  CHECK(cudaMemcpy(device.p, host.data(), 64, cudaMemcpyDeviceToHost) ==
        cudaErrorInvalidMemcpyDirection);
  CHECK_THAT(cudaGetErrorString(cudaErrorInvalidMemcpyDirection),
             Contains("cudaMemcpyDeviceToHost destination is device memory"));
  CHECK(cudaMemcpy(other.data(), host.data(), 64, cudaMemcpyHostToDevice) ==
        cudaErrorInvalidMemcpyDirection);
  CHECK(cudaMemcpy(device.p, host.data(), 64, cudaMemcpyDeviceToDevice) ==
        cudaErrorInvalidMemcpyDirection);
  // Past the end of the allocation, and a memset of host memory.
  CHECK(cudaMemcpy(device.p, host.data(), 68, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK_THAT(cudaGetErrorString(cudaErrorInvalidValue), Contains("run past the end"));
  CHECK(cudaMemset(host.data(), 0, 64) == cudaErrorInvalidValue);
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  // The controls: every kind the right way round, and cudaMemcpyDefault inferring it.
  CHECK(cudaMemcpy(device.p, host.data(), 64, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(other.data(), device.p, 64, cudaMemcpyDefault) == cudaSuccess);
  CHECK(other[15] == 3.0f);
}

TEST_CASE("emulator enforces the shared-memory limit and honours the opt-in", "[emulator]") {
  Buffer out(1);
  emu_checks::dynamic_shared(out.get(), 48 << 10);  // the default limit: fine
  CHECK(out.to_host()[0] == 12288.0f);
  CHECK_THROWS_WITH(emu_checks::dynamic_shared(out.get(), 64 << 10),
                    Contains("65536 bytes of dynamic shared memory exceed the 49152-byte default"));
  CHECK(emu_checks::opt_in_dynamic_shared(228 << 10) == cudaErrorInvalidValue);  // above 227 KiB
  REQUIRE(emu_checks::opt_in_dynamic_shared(64 << 10) == cudaSuccess);
  emu_checks::dynamic_shared(out.get(), 64 << 10);
  CHECK(out.to_host()[0] == 16384.0f);
  CHECK_THROWS_WITH(emu_checks::dynamic_shared(out.get(), 96 << 10),
                    Contains("exceed the 65536-byte limit set with cudaFuncSetAttribute"));
  // Static shared memory counts too: 40 KiB static + 4 KiB dynamic fit, + 12 KiB do not.
  emu_checks::static_and_dynamic_shared(out.get(), 4 << 10);
  CHECK(out.to_host()[0] == 3.0f);
  CHECK_THROWS_WITH(emu_checks::static_and_dynamic_shared(out.get(), 12 << 10),
                    Contains("40960 bytes of static and 12288 of dynamic shared memory exceed"));
}

TEST_CASE("emulator gives static shared memory poisoned contents in every block", "[emulator]") {
  // Run sequentially, an unpoisoned static would hand block b the value block b - 1 left.
  OrderGuard guard;
  emu::set_order(emu::Order::Sequential, 1);
  Buffer out(8);
  emu_checks::stale_static_shared(out.get(), 8);
  for (const float v : out.to_host()) CHECK(std::isnan(v));
}

TEST_CASE("emulator shows a read across a missing __syncthreads as poison", "[emulator]") {
  Buffer out(64);
  emu_checks::missing_barrier(out.get(), 64);
  int unwritten = 0;
  for (const float v : out.to_host()) unwritten += std::isnan(v);
  CHECK(unwritten > 0);
}

TEST_CASE("emulator runs blocks in a shuffled order, exposing inter-block dependences",
          "[emulator]") {
  OrderGuard guard;
  const int blocks = 64;
  std::vector<float> in_order(blocks);
  for (int b = 0; b < blocks; ++b) in_order[b] = static_cast<float>(b);
  Buffer x(blocks);
  emu::set_order(emu::Order::Sequential, 1);
  emu_checks::chain_across_blocks(x.get(), blocks);
  CHECK(x.to_host() == in_order);  // in grid order the bug is invisible
  emu::set_order(emu::Order::Shuffled, 7);
  REQUIRE(cudaMemset(x.p, 0xFF, blocks * sizeof(float)) == cudaSuccess);
  emu_checks::chain_across_blocks(x.get(), blocks);
  CHECK(x.to_host() != in_order);
}

TEST_CASE("emulator poisons fresh device allocations", "[emulator]") {
  Buffer fresh(4);
  for (const float v : fresh.to_host()) CHECK(std::isnan(v));
  void* empty = reinterpret_cast<void*>(1);
  CHECK(cudaMalloc(&empty, 0) == cudaSuccess);
  CHECK(empty == nullptr);
}
