// retain_freed_host_memory: large buffers come from the heap, not from their own mapping that
// free() would hand back to the OS.
#include <catch2/catch.hpp>
#include <malloc.h>

#include <cstdlib>

#include "runtime/host_memory.h"

// AddressSanitizer replaces malloc and ignores mallopt, so there is nothing to check there.
#ifndef __SANITIZE_ADDRESS__
TEST_CASE("retain_freed_host_memory keeps 64 MiB buffers in the heap", "[host_memory]") {
  constexpr size_t kBytes = size_t{64} << 20;
  REQUIRE(tessera::retain_freed_host_memory());
  const size_t mapped_before = mallinfo2().hblkhd;
  void* p = std::malloc(kBytes);
  REQUIRE(p != nullptr);
  const size_t mapped_during = mallinfo2().hblkhd;
  std::free(p);
  CHECK(mapped_during - mapped_before < kBytes);
}
#endif
