// The CPU emulation's arena of device memory: cudaMalloc'd ranges by base address, so that a
// host pointer handed to a kernel, a copy in the wrong direction or one past the end of an
// allocation is refused instead of silently working on host memory.
#include <cstdio>
#include <map>
#include <string>

#include "tests/cuda/emulator/emu.h"
#include "tests/cuda/emulator/emu_state.h"

namespace emu {
namespace {

std::map<const unsigned char*, size_t>& arena() {
  static std::map<const unsigned char*, size_t> ranges;
  return ranges;
}

std::string hex(const void* p) {
  char s[32];
  std::snprintf(s, sizeof(s), "%p", p);
  return s;
}

}  // namespace

void add_allocation(void* base, size_t bytes) {
  arena()[static_cast<const unsigned char*>(base)] = bytes;
}

bool remove_allocation(void* base) {
  return arena().erase(static_cast<const unsigned char*>(base)) == 1;
}

Allocation find_allocation(const void* p) {
  const auto* q = static_cast<const unsigned char*>(p);
  auto it = arena().upper_bound(q);
  if (it == arena().begin()) return {};
  --it;
  if (q > it->first + it->second) return {};
  return {it->first, it->second};
}

MemoryKind memory_kind(const void* p) {
  return find_allocation(p).base != nullptr ? MemoryKind::Device : MemoryKind::Host;
}

void require_device_range(const void* p, size_t bytes, const std::string& what) {
  const Allocation a = find_allocation(p);
  if (a.base == nullptr) {
    throw Refusal(what + ": " + hex(p) + " is not device memory (a host pointer, or freed)");
  }
  const auto* q = static_cast<const unsigned char*>(p);
  if (q + bytes > a.base + a.bytes) {
    throw Refusal(what + ": " + std::to_string(bytes) + " bytes at offset " +
                  std::to_string(q - a.base) + " run past the end of a " +
                  std::to_string(a.bytes) + "-byte device allocation");
  }
}

}  // namespace emu
