// Refuses config features whose runtime is not implemented yet.
#include "runtime/train/runtime_support.h"

#include "core/error.h"

namespace tessera {

void check_runtime_support(const Config& c) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  const ParallelConfig& p = c.parallel;
  // ZeRO-2/3 replace the replicated parameters and AdamW a local SGD / DiLoCo replica keeps.
  TESSERA_REQUIRE(p.zero_stage <= 1 || p.data_parallel_sync == "allreduce",
                  "{}: parallel.zero_stage = {} needs parallel.data_parallel_sync = allreduce, not {}", src,
                  p.zero_stage, p.data_parallel_sync);
  // bf16/fp16 run on the CPU through oneDNN's 16-bit GEMMs; the Eigen reference GEMM is fp32 only.
  TESSERA_REQUIRE(c.train.gemm != "eigen" || c.train.precision == "fp32",
                  "{}: train.gemm = eigen: runs fp32 only (train.precision = {} needs onednn)", src, c.train.precision);
}

}  // namespace tessera
