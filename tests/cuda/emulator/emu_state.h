// State the CPU emulation's runtime calls (emu_runtime.cc) share with its scheduler
// (emu_scheduler.cc) and memory arena (emu_memory.cc); not seen by the translated kernels.
#pragma once

#include <cstddef>

namespace emu {

// The dynamic shared bytes a kernel opted in to with cudaFuncSetAttribute
// (cudaFuncAttributeMaxDynamicSharedMemorySize), 0 when it did not.
size_t opted_in_shared_bytes(const void* kernel);

// The arena: every live cudaMalloc allocation, by base address.
struct Allocation {
  const unsigned char* base = nullptr;
  size_t bytes = 0;
};
void add_allocation(void* base, size_t bytes);
// Removes the allocation starting at base; false when base is not the start of one.
bool remove_allocation(void* base);
// The allocation holding p (one-past-the-end included), or {nullptr, 0}.
Allocation find_allocation(const void* p);

}  // namespace emu
