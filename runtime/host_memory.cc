// glibc mallopt settings behind retain_freed_host_memory (see host_memory.h).
#include "runtime/host_memory.h"

#include <malloc.h>

namespace tessera {

bool retain_freed_host_memory() {
  constexpr int kMmapThreshold = 256 << 20;  // larger blocks still get their own mapping
  constexpr int kTrimThreshold = 1 << 30;
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
}

}  // namespace tessera
