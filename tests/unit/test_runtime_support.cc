// Config features without a runtime yet are refused with one line naming the field.
#include <catch2/catch.hpp>

#include "launcher/config_loader.h"
#include "runtime/train/runtime_support.h"
#include "core/error.h"
#include "tests/unit/test_custom_layer_util.h"

namespace tessera {
namespace {

std::string refusal(const std::string& override_line) {
  const Config c = parse_config_string("model: {arch: gpt}\n", "x.yaml", {override_line});
  try {
    check_runtime_support(c);
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

TEST_CASE("unimplemented features are refused, not ignored", "[config][support]") {
  CHECK(refusal("parallel.tensor_model_parallel_size=2") == "accepted");
  CHECK(refusal("parallel.zero_stage=1") == "accepted");
  CHECK(refusal("parallel.sequence_parallel=true") == "accepted");
  CHECK(refusal("parallel.recompute=full") == "accepted");
  CHECK(refusal("train.precision=bf16") == "accepted");
  CHECK(refusal("train.precision=fp16") == "accepted");
  CHECK(refusal("parallel.zero_stage=2") == "x.yaml: parallel.zero_stage = 2: only ZeRO stages 0 and 1 are implemented");
  CHECK(refusal("train.gemm=eigen") == "accepted");
}

}  // namespace tessera

namespace tessera {

// The refusals live in the Trainer, so a C++ program that never runs the CLI's checks (as
// examples/embed_trainer) gets the same lines: zero_stage 2 used to train as plain AdamW.
TEST_CASE("a Trainer built from C++ refuses what the runtime cannot run", "[config][support]") {
  const Dataset data = test::tiny_dataset();
  Config c = test::tiny_trainer_config();
  c.source = "x.yaml";
  c.parallel.zero_stage = 2;
  CHECK_THROWS_WITH(Trainer(c, data, ParallelGroups{}),
                    "x.yaml: parallel.zero_stage = 2: only ZeRO stages 0 and 1 are implemented");
  c.parallel.zero_stage = 0;
  c.train.precision = "bf16";
  c.train.gemm = "eigen";
  CHECK_THROWS_WITH(Trainer(c, data, ParallelGroups{}),
                    "x.yaml: train.gemm = eigen: runs fp32 only (train.precision = bf16 needs onednn)");
  // The layout rules too, with the config validator's line.
  c.train.precision = "fp32";
  c.train.gemm = "onednn";
  c.parallel.tensor_model_parallel_size = 4;  // 2 heads
  CHECK_THROWS_WITH(Trainer(c, data, ParallelGroups{}),
                    "x.yaml: model.num_attention_heads = 2: must be divisible by "
                    "parallel.tensor_model_parallel_size = 4");
}

}  // namespace tessera
