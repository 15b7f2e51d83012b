// A trained Llama's global (unsharded) fp32 weights on one process, read from a checkpoint
// saved under any layout (or imported from Hugging Face), and its incremental forward with a
// grouped KV cache: each layer caches num_query_groups key/value heads per position, not one
// per query head, so the cache is heads / groups times smaller than multi-head attention's.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/tensor.h"

namespace tessera {

struct LlamaBlockWeights {
  Tensor norm1, q, k, v, o;  // [C]; [A, C], [Kw, C], [Kw, C], [C, A]
  Tensor norm2, gate, up, down;  // [C]; [F, C], [F, C], [C, F]
};

class LlamaKvCache;

class LlamaInferenceModel {
 public:
  // A step directory or a checkpoint.dir (its newest). InputError for a non-llama checkpoint.
  static LlamaInferenceModel load(const std::string& checkpoint_path);
  // From global, unpadded tensors by Tessera name (wte.weight, h.0.self_attn.q_proj.weight,
  // ..., ln_f.weight, lm_head.weight when untied). InputError naming a missing or misshapen one.
  LlamaInferenceModel(const ModelConfig& config, const std::map<std::string, Tensor>& tensors);

  const ModelConfig& config() const { return config_; }
  int64_t vocab_size() const { return wte_.dim(0); }
  int64_t context_length() const { return config_.seq_length; }
  int64_t num_layers() const { return static_cast<int64_t>(blocks_.size()); }
  int64_t kv_width() const { return groups_ * head_dim_; }  // cached values per position and layer

  // Appends new_tokens[i] (non-empty, fitting the context) to sequence i and returns the
  // logits of each sequence's last new token, [n, vocab_size]: the GEMMs run on the stacked
  // rows of all sequences, attention per sequence and head against its group's cache.
  Tensor decode(const std::vector<LlamaKvCache*>& caches, const std::vector<std::vector<int32_t>>& new_tokens) const;

 private:
  void attend(const std::vector<LlamaKvCache*>& caches, const std::vector<int64_t>& first, int layer,
              const Tensor& q, const Tensor& k, const Tensor& v, Tensor& att) const;
  ModelConfig config_;
  int64_t heads_ = 0, groups_ = 0, head_dim_ = 0;
  Tensor wte_, norm_f_, lm_head_;  // lm_head_ shares wte_'s storage when tied
  Tensor cos_, sin_;               // rotary tables for every position of the context
  std::vector<LlamaBlockWeights> blocks_;
};

// Keys and values of one sequence, [context_length, groups * head_dim] per layer.
class LlamaKvCache {
 public:
  explicit LlamaKvCache(const LlamaInferenceModel& model);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  void clear() { length_ = 0; }
  float* keys(int layer) const { return keys_[layer].f32(); }
  float* values(int layer) const { return values_[layer].f32(); }
  void advance(int64_t n);

 private:
  int64_t capacity_ = 0, length_ = 0;
  std::vector<Tensor> keys_, values_;
};

}  // namespace tessera
