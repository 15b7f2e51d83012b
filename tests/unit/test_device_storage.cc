// Device tensors without a GPU: the storage registry, the explicit copies and the host-access
// refusals, with a test double for device memory (host bytes behind a registered DeviceMemory
// that counts what it is asked to do); and the GPU choice's refusals (pure). The real CUDA
// memory is tested by tests/cuda/backend on the emulation and on a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "runtime/device/device_choice.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

// Device memory that is host memory underneath, so copies can be checked byte for byte.
class FakeDeviceMemory : public DeviceMemory {
 public:
  explicit FakeDeviceMemory(Device d) : device_(d) {}
  Device device() const override { return device_; }
  void* allocate(size_t bytes) override {
    void* p = ::operator new(std::max<size_t>(bytes, 1));
    live.insert(p);
    return p;
  }
  void deallocate(void* p) override {
    live.erase(p);
    ::operator delete(p);
  }
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    CHECK((dst_device == device_ || src_device == device_));
    std::memcpy(dst, src, bytes);
    if (dst_device.is_cpu()) ++waits;
  }
  void set_zero(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
  void read_to_host(const std::vector<HostRead>& reads) override {
    for (const HostRead& r : reads) std::memcpy(r.host_dst, r.device_src, r.bytes);
    ++waits;
  }
  int64_t host_waits() const override { return waits; }
  void synchronize() override { ++waits; }
  MemoryStats stats() const override { return {}; }
  void reset_peak() override {}

  std::set<void*> live;
  int64_t waits = 0;

 private:
  Device device_;
};

struct Registered {
  std::shared_ptr<FakeDeviceMemory> memory = std::make_shared<FakeDeviceMemory>(Device::cuda(0));
  Registered() { register_device_memory(Device::cuda(0), memory); }
  ~Registered() { register_device_memory(Device::cuda(0), nullptr); }
};

}  // namespace

TEST_CASE("device storage: without a device runtime a CUDA tensor is refused in one line", "[device]") {
  CHECK_FALSE(has_device_memory(Device::cuda(0)));
  CHECK_THROWS_WITH(Tensor::empty({4}, DType::F32, Device::cuda(0)),
                    Catch::Contains("no memory for cuda:0: this process has not started the CUDA runtime on it"));
}

TEST_CASE("device storage: explicit copies round-trip; host accessors refuse device tensors", "[device]") {
  Registered reg;
  Tensor host = Tensor::empty({2, 3});
  for (int i = 0; i < 6; ++i) host.f32()[i] = static_cast<float>(i) + 0.5f;
  Tensor dev = to_device(host, Device::cuda(0));
  CHECK(dev.device() == Device::cuda(0));
  CHECK(reg.memory->live.count(dev.device_data<void>()) == 1);
  CHECK_THROWS_WITH(dev.f32(), Catch::Contains("host access to a tensor on cuda:0 (F32 [2, 3])"));
  CHECK_THROWS_WITH(dev.fill(1.0f), Catch::Contains("host access"));
  CHECK_THROWS_WITH(host.device_data<float>(), Catch::Contains("a device kernel was given a host tensor"));
  CHECK_THROWS_WITH(host.copy_from(dev), Catch::Contains("host-only (cpu <- cuda:0)"));
  // Views of device storage stay on the device; clone and zero run there.
  Tensor row = dev.narrow(1, 1).clone();
  const Tensor back = to_device(row, Device::cpu());
  CHECK(back.shape() == Shape{1, 3});
  CHECK(back.f32()[0] == 3.5f);
  CHECK(back.f32()[2] == 5.5f);
  row.zero();
  CHECK(to_device(row, Device::cpu()).f32()[1] == 0.0f);
  CHECK_THROWS_WITH(copy_tensor(row, host), Catch::Contains("copy_tensor F32 [2, 3] into F32 [1, 3]"));
  row = Tensor();
  dev = Tensor();
  CHECK(reg.memory->live.empty());  // storage goes back to the device memory it came from
}

TEST_CASE("device storage: read_to_host batches a step's scalars into one wait per device", "[device]") {
  Registered reg;
  std::vector<Tensor> srcs, dsts;
  for (int i = 0; i < 3; ++i) {
    srcs.push_back(to_device(Tensor::full({1}, static_cast<float>(i + 1)), Device::cuda(0)));
    dsts.push_back(Tensor::empty({1}));
  }
  srcs.push_back(Tensor::full({1}, 9.0f));  // a host scalar among them needs no wait
  dsts.push_back(Tensor::empty({1}));
  const int64_t before = reg.memory->host_waits();
  read_to_host(srcs, dsts);
  CHECK(reg.memory->host_waits() == before + 1);
  CHECK(dsts[0].f32()[0] == 1.0f);
  CHECK(dsts[2].f32()[0] == 3.0f);
  CHECK(dsts[3].f32()[0] == 9.0f);
}

TEST_CASE("device choice: the node-local rank's GPU, or one line naming the rule", "[device]") {
  CHECK(choose_cuda_device({true, 4, 5, 1, 4, 22809}) == 1);
  CHECK_THROWS_WITH(choose_cuda_device({false, 0, 0, 0, 1}),
                    Catch::StartsWith("train.device = cuda: this tessera was built without CUDA"));
  CHECK_THROWS_AS(choose_cuda_device({false, 0, 0, 0, 1}), InputError);
  CHECK_THROWS_WITH(choose_cuda_device({true, 0, 3, 0, 1}),
                    Catch::StartsWith("train.device = cuda: no CUDA device is visible to rank 3"));
  CHECK_THROWS_WITH(choose_cuda_device({true, 2, 0, 0, 4, 22809}),
                    Catch::Equals("train.device = cuda: 4 ranks on this node but 2 CUDA devices are visible (one GPU "
                                  "per rank)"));
  CHECK_THROWS_WITH(choose_cuda_device({true, 1, 0, 0, 2, 22809}), Catch::Contains("but 1 CUDA device is visible"));
  CHECK_THROWS_WITH(choose_cuda_device({true, 1, 0, 0, 1, 21703}),
                    Catch::Equals("train.device = cuda: NCCL 2.17.3 is loaded, the communicator needs 2.18 or newer "
                                  "(ncclCommSplit)"));
}

TEST_CASE("device choice: ranks share a GPU only when NCCL >= 2.30 is asked to allow it", "[device]") {
  ::setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1", 1);
  CHECK(choose_cuda_device({true, 1, 1, 1, 2, 23001}) == 0);
  CHECK(choose_cuda_device({true, 2, 3, 3, 4, 23001}) == 1);
  CHECK_THROWS_WITH(choose_cuda_device({true, 1, 1, 1, 2, 22809}), Catch::Contains("(one GPU per rank)"));
  ::unsetenv("NCCL_MULTI_RANK_GPU_ENABLE");
  CHECK_THROWS_WITH(choose_cuda_device({true, 1, 1, 1, 2, 23001}), Catch::Contains("(one GPU per rank)"));
}

}  // namespace tessera
