// The registry of device memory resources and the explicit copies between devices.
#include "runtime/device/device_memory.h"

#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace tessera {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<int, std::shared_ptr<DeviceMemory>> cuda;  // by device index
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_device_memory(Device device, std::shared_ptr<DeviceMemory> memory) {
  TESSERA_CHECK(!device.is_cpu(), "host memory needs no registration");
  TESSERA_CHECK(memory == nullptr || memory->device() == device, "device memory of {} registered for {}",
                memory ? device_name(memory->device()) : "", device_name(device));
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  if (memory == nullptr) {
    r.cuda.erase(device.index);
  } else {
    r.cuda[device.index] = std::move(memory);
  }
}

bool has_device_memory(Device device) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  return r.cuda.count(device.index) > 0;
}

std::shared_ptr<DeviceMemory> device_memory(Device device) {
  TESSERA_CHECK(!device.is_cpu(), "the host has no DeviceMemory");
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.cuda.find(device.index);
  TESSERA_CHECK(it != r.cuda.end(),
                "no memory for {}: this process has not started the CUDA runtime on it (a build without "
                "CUDA never does)",
                device_name(device));
  return it->second;
}

void copy_tensor(Tensor& dst, const Tensor& src) {
  TESSERA_CHECK(src.numel() == dst.numel() && src.dtype() == dst.dtype(), "copy_tensor {} {} into {} {}",
                dtype_name(src.dtype()), shape_string(src.shape()), dtype_name(dst.dtype()),
                shape_string(dst.shape()));
  if (dst.nbytes() == 0) return;
  if (src.device().is_cpu() && dst.device().is_cpu()) {
    std::memcpy(dst.data<char>(), src.data<char>(), dst.nbytes());
    return;
  }
  TESSERA_CHECK(src.device().is_cpu() || dst.device().is_cpu() || src.device() == dst.device(),
                "copy_tensor between two devices ({} -> {}) is not supported", device_name(src.device()),
                device_name(dst.device()));
  // Either side may be the device; its resource knows how to reach the other.
  const Device device = dst.device().is_cpu() ? src.device() : dst.device();
  char* dst_ptr = dst.device().is_cpu() ? dst.data<char>() : dst.device_data<char>();
  const char* src_ptr = src.device().is_cpu() ? src.data<char>() : src.device_data<char>();
  device_memory(device)->copy(dst_ptr, dst.device(), src_ptr, src.device(), dst.nbytes());
}

Tensor to_device(const Tensor& src, Device device) {
  if (src.device() == device) return src;
  Tensor out = Tensor::empty(src.shape(), src.dtype(), device);
  copy_tensor(out, src);
  return out;
}

void read_to_host(const std::vector<Tensor>& srcs, std::vector<Tensor>& dsts) {
  TESSERA_CHECK(srcs.size() == dsts.size(), "read_to_host: {} sources, {} destinations", srcs.size(), dsts.size());
  std::map<int, std::vector<DeviceMemory::HostRead>> per_device;
  for (size_t i = 0; i < srcs.size(); ++i) {
    TESSERA_CHECK(dsts[i].device().is_cpu(), "read_to_host: destination {} is on {}", i,
                  device_name(dsts[i].device()));
    if (srcs[i].device().is_cpu()) {
      copy_tensor(dsts[i], srcs[i]);
      continue;
    }
    TESSERA_CHECK(srcs[i].nbytes() == dsts[i].nbytes() && srcs[i].dtype() == dsts[i].dtype(),
                  "read_to_host: {} {} into {} {}", dtype_name(srcs[i].dtype()), shape_string(srcs[i].shape()),
                  dtype_name(dsts[i].dtype()), shape_string(dsts[i].shape()));
    per_device[srcs[i].device().index].push_back(
        {dsts[i].data<char>(), srcs[i].device_data<char>(), srcs[i].nbytes()});
  }
  for (const auto& [index, reads] : per_device) device_memory(Device::cuda(index))->read_to_host(reads);
}

}  // namespace tessera
