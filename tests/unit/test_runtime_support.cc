// Config features without a runtime yet are refused with one line naming the field.
#include <catch2/catch.hpp>

#include "launcher/config_loader.h"
#include "launcher/runtime_support.h"
#include "core/error.h"

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
}

}  // namespace tessera
