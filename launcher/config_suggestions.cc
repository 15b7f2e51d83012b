// Unknown config keys: the nearest known key (a typo in the right section, the right name in
// another section, another trainer's name for it, a name cut short), else the section's keys.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "launcher/config_schema.h"

namespace tessera::config {
namespace {

std::string parent_of(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string leaf_of(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

// Every key a config may hold: the sections and the fields, in schema order.
const std::vector<std::string>& known_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto& f : schema()) {
      for (std::string s = parent_of(f.key); !s.empty(); s = parent_of(s)) {
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
      }
      out.push_back(f.key);
    }
    return out;
  }();
  return keys;
}

// Edit distance counting a swap of neighbours as one edit (optimal string alignment).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// Names other trainers use (nanoGPT, Megatron, Hugging Face) for our keys.
const std::vector<std::pair<std::string, std::string>>& aliases() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"n_layer", "model.num_layers"}, {"n_layers", "model.num_layers"},
      {"num_hidden_layers", "model.num_layers"}, {"num_key_value_heads", "model.num_query_groups"},
      {"rope_theta", "model.rotary_base"}, {"rms_norm_eps", "model.norm_epsilon"}, {"n_head", "model.num_attention_heads"},
      {"n_heads", "model.num_attention_heads"}, {"num_heads", "model.num_attention_heads"},
      {"n_embd", "model.hidden_size"}, {"d_model", "model.hidden_size"},
      {"intermediate_size", "model.ffn_hidden_size"}, {"d_ff", "model.ffn_hidden_size"},
      {"block_size", "model.seq_length"}, {"seq_len", "model.seq_length"},
      {"max_position_embeddings", "model.seq_length"}, {"vocab_size", "model.vocab"},
      {"init_method_std", "model.init_std"}, {"tp", "parallel.tensor_model_parallel_size"},
      {"tensor_parallel_size", "parallel.tensor_model_parallel_size"},
      {"pp", "parallel.pipeline_model_parallel_size"},
      {"pipeline_parallel_size", "parallel.pipeline_model_parallel_size"},
      {"dp", "parallel.data_parallel_size"},
      {"virtual_pipeline_model_parallel_size", "parallel.virtual_stages"},
      {"batch_size", "train.micro_batch_size"}, {"max_iters", "train.max_steps"},
      {"train_iters", "train.max_steps"}, {"dtype", "train.precision"},
      {"learning_rate", "train.optimizer.lr"}, {"warmup_iters", "train.optimizer.warmup_steps"},
      {"lr_decay_iters", "train.optimizer.decay_steps"}, {"beta1", "train.optimizer.betas"},
      {"beta2", "train.optimizer.betas"}, {"clip_grad", "train.optimizer.grad_clip"},
      {"out_dir", "checkpoint.dir"}, {"save_interval", "checkpoint.interval"},
      {"log_interval", "log.interval"},
  };
  return table;
}

std::string suggestion_for(const std::string& key) {
  const std::string parent = parent_of(key), leaf = leaf_of(key);
  // A typo within the right section is the likeliest mistake.
  std::string best;
  size_t best_distance = std::max<size_t>(1, leaf.size() / 3) + 1;
  for (const auto& k : known_keys()) {
    if (parent_of(k) != parent) continue;
    const size_t d = edit_distance(leaf_of(k), leaf);
    if (d < best_distance) best = k, best_distance = d;
  }
  if (!best.empty()) return best;
  // Then the right name in the wrong section (train.lr -> train.optimizer.lr).
  for (const auto& k : known_keys()) {
    if (leaf_of(k) == leaf) return k;
  }
  for (const auto& [alias, target] : aliases()) {
    if (alias == leaf) return target;
  }
  // Then a name cut short or run on (global_batch -> global_batch_size).
  for (const auto& k : known_keys()) {
    const std::string known = leaf_of(k);
    if (parent_of(k) == parent && std::min(known.size(), leaf.size()) >= 4 &&
        (known.starts_with(leaf) || leaf.starts_with(known))) {
      return k;
    }
  }
  return "";
}

}  // namespace

bool is_section(const std::string& key) {
  if (key.empty()) return true;
  const auto& keys = known_keys();
  return std::find(keys.begin(), keys.end(), key) != keys.end() && find_field(key) == nullptr;
}

std::string unknown_key_message(const std::string& key) {
  std::string message = fmt::format("unknown key '{}'", key);
  const std::string suggestion = suggestion_for(key);
  if (!suggestion.empty()) return message + fmt::format(" (did you mean '{}'?)", suggestion);
  const std::string parent = parent_of(key);
  if (!is_section(parent)) return message + fmt::format(" ({} is a value, not a section)", parent);
  std::vector<std::string> siblings;
  for (const auto& k : known_keys()) {
    if (parent_of(k) == parent) siblings.push_back(leaf_of(k));
  }
  if (parent.empty()) return message + fmt::format(" (known sections: {})", fmt::join(siblings, ", "));
  return message + fmt::format(" (known keys in {}: {})", parent, fmt::join(siblings, ", "));
}

}  // namespace tessera::config
