// Refuses config features whose runtime is not implemented yet.
#include "launcher/runtime_support.h"

#include "runtime/error.h"

namespace tessera {

void check_runtime_support(const Config& c) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  const ParallelConfig& p = c.parallel;
  TESSERA_REQUIRE(p.pipeline_model_parallel_size == 1,
                  "{}: parallel.pipeline_model_parallel_size = {}: pipeline parallelism is not implemented "
                  "yet in this build (use 1)", src, p.pipeline_model_parallel_size);
  TESSERA_REQUIRE(p.virtual_stages == 1,
                  "{}: parallel.virtual_stages = {}: interleaved pipeline stages are not implemented yet (use 1)",
                  src, p.virtual_stages);
  TESSERA_REQUIRE(p.recompute == "none",
                  "{}: parallel.recompute = '{}': activation recomputation is not implemented yet (use none)",
                  src, p.recompute);
  TESSERA_REQUIRE(p.zero_stage <= 1, "{}: parallel.zero_stage = {}: only ZeRO stages 0 and 1 are implemented",
                  src, p.zero_stage);
  TESSERA_REQUIRE(c.train.precision == "fp32",
                  "{}: train.precision = '{}': only fp32 runs on the CPU backend (bf16/fp16 come with CUDA)",
                  src, c.train.precision);
  TESSERA_REQUIRE(c.log.trace.empty(), "{}: log.trace = '{}': the pipeline trace is not implemented yet (use null)",
                  src, c.log.trace);
  TESSERA_REQUIRE(c.checkpoint.interval == 0 && c.checkpoint.resume == "none",
                  "{}: checkpoint.interval / checkpoint.resume: checkpointing is not implemented yet "
                  "(use interval 0 and resume none)", src);
}

}  // namespace tessera
