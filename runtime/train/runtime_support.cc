// Refuses config features whose runtime is not implemented yet.
#include "runtime/train/runtime_support.h"

#include "core/error.h"

namespace tessera {

void check_runtime_support(const Config& c) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  const ParallelConfig& p = c.parallel;
  TESSERA_REQUIRE(p.zero_stage <= 1, "{}: parallel.zero_stage = {}: only ZeRO stages 0 and 1 are implemented",
                  src, p.zero_stage);
  TESSERA_REQUIRE(c.train.precision == "fp32",
                  "{}: train.precision = '{}': only fp32 runs on the CPU backend (bf16/fp16 come with CUDA)",
                  src, c.train.precision);
}

}  // namespace tessera
