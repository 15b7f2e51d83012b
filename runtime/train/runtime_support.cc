// Refuses config features whose runtime is not implemented yet.
#include "runtime/train/runtime_support.h"

#include <fmt/format.h>

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
  if (c.train.device == "cuda") check_cuda_support(c, src);
}

// What the trainer runs on a GPU so far (docs/cuda.md): the GPT, MLP and Llama layers, tensor
// (with sequence), pipeline and data parallelism (synchronous with fp32 or bf16 gradient reduction, or
// local SGD / DiLoCo), ZeRO 1-3, recompute, AdamW, fp32, bf16 and fp16. The rest is refused
// before any work, one line naming the key, rather than run on the CPU behind the user's back.
void check_cuda_support(const Config& c, const std::string& src) {
  const auto refuse_unless = [&](bool ok, const std::string& key, const std::string& value) {
    TESSERA_REQUIRE(ok, "{}: {} = {} with train.device = cuda: not implemented on the GPU yet", src, key, value);
  };
  refuse_unless(c.prune.target_sparsity == 0, "prune.target_sparsity", fmt::format("{}", c.prune.target_sparsity));
}

}  // namespace tessera
