// Refuses config features whose runtime is not implemented yet.
#include "launcher/runtime_support.h"

#include "core/error.h"

namespace tessera {

void check_runtime_support(const Config& c) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  const ParallelConfig& p = c.parallel;
  TESSERA_REQUIRE(p.zero_stage <= 1, "{}: parallel.zero_stage = {}: only ZeRO stages 0 and 1 are implemented",
                  src, p.zero_stage);
}

}  // namespace tessera
