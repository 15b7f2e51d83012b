// Helpers of the inference tests (defined in test_inference_util.cc): tiny GPT checkpoints
// saved under any simulated (tp, pp) layout with the same global weights, and a relative
// error for comparing logits.
#pragma once

#include <string>

#include "core/config.h"
#include "runtime/data/vocabulary.h"
#include "runtime/tensor.h"
#include "tests/unit/tiny_models.h"

namespace tessera::inference_test {

// 65 printable characters (' ' .. '`'), the size of Tiny Shakespeare's vocabulary.
Vocabulary test_vocabulary();
// The tiny GPT of the checkpoint tests: 2 layers, hidden 32, 4 heads, ffn 64, context 16.
// Saves a step-7 checkpoint of tiny_gpt_config() under <dir> as the ranks of a tp x pp job would,
// every layout holding the same global weights (deterministic, well away from zero);
// returns its step directory.
std::string save_tiny_checkpoint(const std::string& dir, int tp, int pp);
// max |got - want| / max |want|.
double relative_error(const float* got, const float* want, int64_t n);
// A token tensor [B, T] of pseudo-random ids in [0, vocab).
Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed);

}  // namespace tessera::inference_test
