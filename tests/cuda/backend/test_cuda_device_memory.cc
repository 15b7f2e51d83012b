// Device tensors on the CUDA runtime (the emulation in CI, a GPU in the device check): storage
// from the rank's caching allocator, copies in both directions, zeroing on the compute stream,
// and read_to_host batching a step's scalars into one host wait through the pinned staging buffer.
#include <catch2/catch.hpp>

#include "runtime/device/cuda_context.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

std::shared_ptr<CudaContext> context() {
  static std::shared_ptr<CudaContext> ctx = start_cuda_device(0, false);
  return ctx;
}

}  // namespace

TEST_CASE("cuda device memory: tensors come from the caching allocator and go back to it", "[cuda_memory]") {
  CudaContext& ctx = *context();
  const auto before = ctx.allocator().stats();
  {
    Tensor a = Tensor::empty({1000}, DType::F32, ctx.device());
    CHECK(ctx.allocator().stats().current_bytes >= before.current_bytes + 4000);
  }
  CHECK(ctx.allocator().stats().current_bytes == before.current_bytes);
  // The same size again is served from the cache: no new backend allocation.
  const int64_t allocations = ctx.allocator().stats().backend_allocations;
  Tensor b = Tensor::empty({1000}, DType::F32, ctx.device());
  CHECK(ctx.allocator().stats().backend_allocations == allocations);
}

TEST_CASE("cuda device memory: copies both ways, clone, zero and views", "[cuda_memory]") {
  const Device d = context()->device();
  Tensor host = Tensor::empty({3, 4});
  for (int i = 0; i < 12; ++i) host.f32()[i] = static_cast<float>(i * i);
  Tensor dev = to_device(host, d);
  Tensor copy = dev.clone();
  dev.narrow(1, 1).zero();
  const Tensor back = to_device(dev, Device::cpu()), copied = to_device(copy, Device::cpu());
  for (int i = 0; i < 12; ++i) {
    CHECK(back.f32()[i] == (i >= 4 && i < 8 ? 0.0f : static_cast<float>(i * i)));
    CHECK(copied.f32()[i] == static_cast<float>(i * i));
  }
}

TEST_CASE("cuda device memory: a step's scalars are read with one host wait", "[cuda_memory]") {
  const Device d = context()->device();
  std::vector<Tensor> srcs, dsts;
  for (int i = 0; i < 5; ++i) {
    srcs.push_back(to_device(Tensor::full({1}, 1.5f * static_cast<float>(i)), d));
    dsts.push_back(Tensor::empty({1}));
  }
  Tensor flags = Tensor::empty({2}, DType::I32);
  flags.i32()[0] = 0;
  flags.i32()[1] = 1;
  srcs.push_back(to_device(flags, d));
  dsts.push_back(Tensor::empty({2}, DType::I32));
  const std::shared_ptr<DeviceMemory> memory = device_memory(d);
  const int64_t before = memory->host_waits();
  read_to_host(srcs, dsts);
  CHECK(memory->host_waits() == before + 1);
  CHECK(dsts[4].f32()[0] == 6.0f);
  CHECK(dsts[5].i32()[1] == 1);
}

}  // namespace tessera
