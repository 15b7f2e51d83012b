// The CPU emulation's CUDA runtime: the calls that the kernels and the [cuda] tests make, backed
// by host memory registered in the arena (emu_memory.cc), with the checks a GPU applies or would
// fault on: copies in the wrong direction or past an allocation, frees of pointers cudaMalloc did
// not return, shared-memory opt-ins above the limit. A refused call returns an error code and
// cudaGetErrorString gives the refusal's message (also printed, for callers that do not check).
// Linked instead of libcudart into the emulated tests.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

#include "tests/cuda/emulator/emu.h"
#include "tests/cuda/emulator/emu_state.h"

namespace emu {
namespace {

// The message of the last refused call, for cudaGetErrorString.
cudaError_t g_refused_code = cudaSuccess;
std::string g_refused_message;

std::unordered_map<const void*, size_t>& opt_ins() {
  static std::unordered_map<const void*, size_t> bytes;
  return bytes;
}

cudaError_t refuse(cudaError_t code, const std::string& message) {
  g_refused_code = code;
  g_refused_message = "CUDA emulator refused: " + message;
  std::fprintf(stderr, "%s\n", g_refused_message.c_str());
  return code;
}

const char* kind_name(cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
    default: return "cudaMemcpyDefault";
  }
}

// Each side of a copy must be what the kind says: device memory covering the whole range, or
// host memory. cudaMemcpyDefault infers the side from the pointer, as unified addressing does.
cudaError_t check_side(const void* p, size_t count, bool want_device, const char* side,
                       cudaMemcpyKind kind) {
  const std::string what = std::string(kind_name(kind)) + " " + side;
  if (!want_device) {
    if (memory_kind(p) == MemoryKind::Device) {
      return refuse(cudaErrorInvalidMemcpyDirection,
                    what + " is device memory, but the kind says host");
    }
    return cudaSuccess;
  }
  try {
    require_device_range(p, count, what);
  } catch (const Refusal& e) {
    return refuse(memory_kind(p) == MemoryKind::Host ? cudaErrorInvalidMemcpyDirection
                                                     : cudaErrorInvalidValue,
                  e.what());
  }
  return cudaSuccess;
}

cudaError_t check_copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  bool dst_device, src_device;
  switch (kind) {
    case cudaMemcpyHostToHost: dst_device = false, src_device = false; break;
    case cudaMemcpyHostToDevice: dst_device = true, src_device = false; break;
    case cudaMemcpyDeviceToHost: dst_device = false, src_device = true; break;
    case cudaMemcpyDeviceToDevice: dst_device = true, src_device = true; break;
    case cudaMemcpyDefault:
      dst_device = memory_kind(dst) == MemoryKind::Device;
      src_device = memory_kind(src) == MemoryKind::Device;
      break;
    default: return refuse(cudaErrorInvalidMemcpyDirection, "unknown cudaMemcpyKind");
  }
  const cudaError_t err = check_side(dst, count, dst_device, "destination", kind);
  return err != cudaSuccess ? err : check_side(src, count, src_device, "source", kind);
}

}  // namespace

size_t opted_in_shared_bytes(const void* kernel) {
  if (kernel == nullptr) return 0;
  const auto it = opt_ins().find(kernel);
  return it == opt_ins().end() ? 0 : it->second;
}

}  // namespace emu

// The CUDA runtime calls. Streams are fake (every call completes before it returns, so stream
// order holds trivially).
extern "C" {

// Like CUDA, 0 bytes give a null pointer. Fresh memory is 0xFF bytes, as shared memory is, so
// a kernel that reads what nobody wrote sees NaN.
cudaError_t cudaMalloc(void** ptr, size_t size) {
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  *ptr = std::malloc(size);
  if (*ptr == nullptr) return cudaErrorMemoryAllocation;
  std::memset(*ptr, 0xFF, size);
  emu::add_allocation(*ptr, size);
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (!emu::remove_allocation(ptr)) {
    return emu::refuse(cudaErrorInvalidValue,
                       "cudaFree of a pointer that is not a live cudaMalloc allocation "
                       "(host memory, an interior pointer, or a double free)");
  }
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  const cudaError_t err = emu::check_copy(dst, src, count, kind);
  if (err != cudaSuccess) return err;
  std::memmove(dst, src, count);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  try {
    emu::require_device_range(ptr, count, "cudaMemset");
  } catch (const emu::Refusal& e) {
    return emu::refuse(cudaErrorInvalidValue, e.what());
  }
  std::memset(ptr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
  return cudaMemset(ptr, value, count);
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = size_t{1} << 40;
  *total = size_t{1} << 40;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t err) {
  if (err == cudaSuccess) return "no error";
  if (err == emu::g_refused_code) return emu::g_refused_message.c_str();
  return "emulated CUDA error";
}
// One emulated device, or TESSERA_EMU_DEVICES of them (a positive integer): so that a test can
// run several ranks of a node with one device each, all on this CPU.
cudaError_t cudaGetDeviceCount(int* count) {
  const char* env = std::getenv("TESSERA_EMU_DEVICES");
  *count = 1;
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 64) {
      std::fprintf(stderr, "TESSERA_EMU_DEVICES=%s: must be a device count from 1 to 64\n", env);
      std::abort();
    }
    *count = static_cast<int>(n);
  }
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "CPU emulation of CUDA (tests/cuda/emulator)");
  prop->major = 9;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = reinterpret_cast<cudaStream_t>(std::malloc(1));
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  return cudaStreamCreate(stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::free(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
// The dynamic shared-memory opt-in is recorded per kernel address and enforced at launch.
cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || static_cast<size_t>(value) > emu::kMaxOptInSharedBytes) {
    return emu::refuse(cudaErrorInvalidValue,
                       "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, " + std::to_string(value) +
                           "): sm_90 allows at most 227 KiB (232448 bytes)");
  }
  emu::opt_ins()[func] = static_cast<size_t>(value);
  return cudaSuccess;
}

}  // extern "C"
