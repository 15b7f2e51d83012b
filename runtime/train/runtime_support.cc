// Refuses config features whose runtime is not implemented yet.
#include "runtime/train/runtime_support.h"

#include "core/error.h"

namespace tessera {

void check_runtime_support(const Config& c) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  TESSERA_REQUIRE(c.train.precision == "fp32",
                  "{}: train.precision = '{}': only fp32 runs on the CPU backend (bf16/fp16 come with CUDA)",
                  src, c.train.precision);
}

}  // namespace tessera
