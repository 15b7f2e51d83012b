// Config features without a runtime yet are refused with one line naming the field.
#include <catch2/catch.hpp>

#include "launcher/config_loader.h"
#include "runtime/train/runtime_support.h"
#include "core/error.h"
#include "tests/unit/test_custom_layer_util.h"

namespace tessera {
namespace {

std::string refusal_of(const std::vector<std::string>& override_lines) {
  const Config c = parse_config_string("model: {arch: gpt}\n", "x.yaml", override_lines);
  try {
    check_runtime_support(c);
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

std::string refusal(const std::string& override_line) { return refusal_of({override_line}); }

}  // namespace

TEST_CASE("unimplemented features are refused, not ignored", "[config][support]") {
  CHECK(refusal("parallel.tensor_model_parallel_size=2") == "accepted");
  CHECK(refusal("parallel.zero_stage=1") == "accepted");
  CHECK(refusal("parallel.sequence_parallel=true") == "accepted");
  CHECK(refusal("parallel.recompute=full") == "accepted");
  CHECK(refusal("train.precision=bf16") == "accepted");
  CHECK(refusal("train.precision=fp16") == "accepted");
  CHECK(refusal("parallel.zero_stage=2") == "accepted");
  CHECK(refusal("parallel.zero_stage=3") == "accepted");
  CHECK(refusal("train.gemm=eigen") == "accepted");
  CHECK(refusal_of({"parallel.zero_stage=3", "parallel.grad_reduce_dtype=bf16"}) == "accepted");
  CHECK(refusal_of({"parallel.zero_stage=2", "parallel.data_parallel_sync=diloco"}) ==
        "x.yaml: parallel.zero_stage = 2 needs parallel.data_parallel_sync = allreduce, not diloco");
}

}  // namespace tessera

namespace tessera {

// The refusals live in the Trainer, so a C++ program that never runs the CLI's checks (as
// examples/embed_trainer) gets the same lines.
TEST_CASE("a Trainer built from C++ refuses what the runtime cannot run", "[config][support]") {
  const Dataset data = test::tiny_dataset();
  Config c = test::tiny_trainer_config();
  c.source = "x.yaml";
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
