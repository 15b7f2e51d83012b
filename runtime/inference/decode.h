// Incremental forward with KV caches: the training model's math on the new tokens only.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/inference/inference_model.h"
#include "runtime/inference/kv_cache.h"

namespace tessera {

// Appends new_tokens[i] to sequence i (caches[i]) and returns the logits of each sequence's
// last new token, [n, vocab_size] -- or, for a sequence with every_row[i] set (every_row empty:
// none), of each of its new tokens in order (a prompt's log-probabilities need them). Sequences may have different lengths (batched decode for
// a server): the GEMMs run on the stacked rows of all sequences, attention per sequence.
// Every new_tokens[i] must be non-empty and fit: caches[i]->length() + its size <=
// context_length (Error otherwise; the caches are left unchanged). On a tensor-parallel shard
// every tp rank calls it with the same tokens; only rank 0 gets logits (the others an undefined
// Tensor).
Tensor decode(const InferenceModel& model, const std::vector<KvCache*>& caches,
              const std::vector<std::vector<int32_t>>& new_tokens, const std::vector<bool>& every_row = {});

}  // namespace tessera
