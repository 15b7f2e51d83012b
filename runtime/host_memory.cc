// glibc mallopt settings behind retain_freed_host_memory (see host_memory.h).
#include "runtime/host_memory.h"

#include <malloc.h>

#include "runtime/error.h"

namespace tessera {

void retain_freed_host_memory() {
  constexpr int kMmapThreshold = 256 << 20;  // larger blocks still get their own mapping
  constexpr int kTrimThreshold = 1 << 30;
  TESSERA_CHECK(mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1, "mallopt(M_MMAP_THRESHOLD) failed");
  TESSERA_CHECK(mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1, "mallopt(M_TRIM_THRESHOLD) failed");
}

}  // namespace tessera
