// The schema table (every field of core/config.h), its field builders, and the rendering of
// values in messages (show, require). The unknown-key suggestions are config_suggestions.cc.
#include "launcher/config_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "core/error.h"

namespace tessera::config {
namespace {

// A field's place in Config; generic, so one lambda serves const and non-const configs.
#define TESSERA_AT(member) [](auto& c) -> auto& { return c.member; }

template <class Ref>
using ValueOf = std::remove_reference_t<decltype(std::declval<Ref>()(std::declval<Config&>()))>;

// An int field with an inclusive range; the rule text says the range in words.
template <class Ref>
Field integer(std::string key, Ref ref, int lo, std::string rule, int hi = INT_MAX) {
  return {std::move(key), rule,
          [ref](const ConfigNode& n, Config& c) {
            const auto v = scalar_integer<int>(n);
            if (v) ref(c) = *v;
            return v.has_value();
          },
          [ref, lo, hi, rule](const Config& c) {
            return ref(c) >= lo && ref(c) <= hi ? std::string() : rule;
          },
          [ref](const Config& c) { return ConfigNode::scalar(std::to_string(ref(c))); },
          "integer"};
}

template <class Ref>
Field positive(std::string key, Ref ref) {
  return integer(std::move(key), ref, 1, "must be a positive integer");
}

template <class Ref>
Field non_negative(std::string key, Ref ref) {
  return integer(std::move(key), ref, 0, "must be a non-negative integer");
}

// A double (or float) field; ok says which finite values are allowed.
template <class Ref>
Field number(std::string key, Ref ref, bool (*ok)(double), std::string rule) {
  return {std::move(key), rule,
          [ref](const ConfigNode& n, Config& c) {
            const auto v = scalar_number(n);
            if (v) ref(c) = static_cast<ValueOf<Ref>>(*v);
            return v.has_value();
          },
          [ref, ok, rule](const Config& c) { return ok(ref(c)) ? std::string() : rule; },
          [ref](const Config& c) { return ConfigNode::scalar(format_number(ref(c))); },
          "number"};
}

bool is_positive(double x) { return x > 0; }
bool is_non_negative(double x) { return x >= 0; }
bool is_finite(double) { return true; }  // scalar_number already refuses inf and nan
bool is_fraction(double x) { return x >= 0 && x <= 0.5; }
bool is_sparsity(double x) { return x >= 0 && x < 1; }
bool is_momentum(double x) { return x >= 0 && x < 1; }

template <class Ref>
Field boolean(std::string key, Ref ref) {
  return {std::move(key), "must be true or false",
          [ref](const ConfigNode& n, Config& c) {
            const auto v = scalar_bool(n);
            if (v) ref(c) = *v;
            return v.has_value();
          },
          [](const Config&) { return std::string(); },
          [ref](const Config& c) { return ConfigNode::scalar(ref(c) ? "true" : "false"); },
          "boolean"};
}

template <class Ref>
Field one_of(std::string key, Ref ref, std::vector<std::string> values) {
  const std::string rule = fmt::format("must be one of {}", fmt::join(values, ", "));
  return {std::move(key), rule,
          [ref](const ConfigNode& n, Config& c) {
            if (n.kind != ConfigNode::Kind::Scalar) return false;
            ref(c) = n.text;
            return true;
          },
          [ref, values, rule](const Config& c) {
            return std::count(values.begin(), values.end(), ref(c)) ? std::string() : rule;
          },
          [ref](const Config& c) { return ConfigNode::string(ref(c)); },
          "choice"};
}

// A path; when optional, null (or an absent key) means "none" and is stored as "".
template <class Ref>
Field path(std::string key, Ref ref, bool optional) {
  const std::string rule = optional ? "must be a path, or null for none" : "must be a path";
  return {std::move(key), rule,
          [ref, optional](const ConfigNode& n, Config& c) {
            if (n.kind == ConfigNode::Kind::Null && optional) {
              ref(c).clear();
              return true;
            }
            if (n.kind != ConfigNode::Kind::Scalar) return false;
            ref(c) = n.text;
            return true;
          },
          [ref, optional, rule](const Config& c) {
            return optional || !ref(c).empty() ? std::string() : rule;
          },
          [ref, optional](const Config& c) {
            return optional && ref(c).empty() ? ConfigNode() : ConfigNode::string(ref(c));
          },
          optional ? "path or null" : "path"};
}

bool is_positive_integer_text(const std::string& text) {
  const auto v = scalar_integer<int>(ConfigNode::scalar(text));
  return v && *v > 0;
}

// model.vocab: chars, bytes, or a vocabulary size, stored as text ("50257").
Field vocab_field() {
  const std::string rule = "must be chars, bytes, or a positive integer";
  return {"model.vocab", rule,
          [](const ConfigNode& n, Config& c) {
            if (n.kind != ConfigNode::Kind::Scalar) return false;
            const auto v = scalar_integer<int64_t>(n);
            c.model.vocab = v ? std::to_string(*v) : n.text;
            return true;
          },
          [rule](const Config& c) {
            const std::string& v = c.model.vocab;
            return v == "chars" || v == "bytes" || is_positive_integer_text(v) ? std::string() : rule;
          },
          [](const Config& c) {
            const std::string& v = c.model.vocab;
            return scalar_integer<int64_t>(ConfigNode::scalar(v)) ? ConfigNode::scalar(v)
                                                                    : ConfigNode::string(v);
          },
          "chars, bytes or integer"};
}

// model.ffn_hidden_size: null or 0 ask for 4 * hidden_size, which the loader fills in.
Field ffn_field() {
  Field f = integer("model.ffn_hidden_size", TESSERA_AT(model.ffn_hidden_size), 0,
                    "must be a positive integer, or 0 for 4 * hidden_size");
  f.read = [](const ConfigNode& n, Config& c) {
    if (n.kind == ConfigNode::Kind::Null) {
      c.model.ffn_hidden_size = 0;
      return true;
    }
    const auto v = scalar_integer<int>(n);
    if (v) c.model.ffn_hidden_size = *v;
    return v.has_value();
  };
  f.type = "integer or null";
  return f;
}

bool is_auto(const ConfigNode& n) {
  return n.kind == ConfigNode::Kind::Null || (n.kind == ConfigNode::Kind::Scalar && n.text == "auto");
}

// parallel.data_parallel_size: a size or auto (stored as 0: world / (tp * pp)).
Field data_parallel_field() {
  Field f = integer("parallel.data_parallel_size", TESSERA_AT(parallel.data_parallel_size), 0,
                    "must be a positive integer or auto");
  f.read = [](const ConfigNode& n, Config& c) {
    if (is_auto(n)) {
      c.parallel.data_parallel_size = 0;
      return true;
    }
    const auto v = scalar_integer<int>(n);
    if (v) c.parallel.data_parallel_size = *v;
    return v && *v != 0;  // 0 is how auto is stored, but a user writes auto
  };
  f.write = [](const Config& c) {
    const int dp = c.parallel.data_parallel_size;
    return dp == 0 ? ConfigNode::string("auto") : ConfigNode::scalar(std::to_string(dp));
  };
  f.type = "integer or auto";
  return f;
}

// parallel.partition: auto (stored empty) or the layer count of each stage.
Field partition_field() {
  const std::string rule = "must be auto or a list of positive integers";
  return {"parallel.partition", rule,
          [](const ConfigNode& n, Config& c) {
            c.parallel.partition.clear();
            if (is_auto(n)) return true;
            if (n.kind != ConfigNode::Kind::Sequence) return false;
            for (const auto& item : n.items) {
              const auto v = scalar_integer<int>(item);
              if (!v) return false;
              c.parallel.partition.push_back(*v);
            }
            return true;
          },
          [rule](const Config& c) {
            const auto& p = c.parallel.partition;
            return std::all_of(p.begin(), p.end(), [](int x) { return x > 0; }) ? std::string() : rule;
          },
          [](const Config& c) {
            if (c.parallel.partition.empty()) return ConfigNode::string("auto");
            std::vector<ConfigNode> items;
            for (int x : c.parallel.partition) items.push_back(ConfigNode::scalar(std::to_string(x)));
            return ConfigNode::sequence(std::move(items));
          },
          "auto or list of integers"};
}

// train.optimizer.betas: [beta1, beta2], Adam's decay rates of the two moments.
Field betas_field() {
  return {"train.optimizer.betas", "must be a list of two numbers [beta1, beta2]",
          [](const ConfigNode& n, Config& c) {
            if (n.kind != ConfigNode::Kind::Sequence || n.items.size() != 2) return false;
            const auto b1 = scalar_number(n.items[0]), b2 = scalar_number(n.items[1]);
            if (!b1 || !b2) return false;
            c.train.optimizer.beta1 = *b1;
            c.train.optimizer.beta2 = *b2;
            return true;
          },
          [](const Config& c) {
            const auto in_range = [](double b) { return b >= 0 && b < 1; };
            return in_range(c.train.optimizer.beta1) && in_range(c.train.optimizer.beta2)
                       ? std::string()
                       : std::string("must be two numbers in [0, 1)");
          },
          [](const Config& c) {
            return ConfigNode::sequence({ConfigNode::scalar(format_number(c.train.optimizer.beta1)),
                                         ConfigNode::scalar(format_number(c.train.optimizer.beta2))});
          },
          "list of 2 numbers"};
}

Field seed_field() {
  const std::string rule = "must be a non-negative integer";
  return {"train.seed", rule,
          [](const ConfigNode& n, Config& c) {
            const auto v = scalar_integer<uint64_t>(n);
            if (v) c.train.seed = *v;
            return v.has_value();
          },
          [](const Config&) { return std::string(); },
          [](const Config& c) { return ConfigNode::scalar(std::to_string(c.train.seed)); },
          "integer (64-bit)"};
}

std::vector<Field> make_schema() {
  return {
      one_of("model.arch", TESSERA_AT(model.arch), {"gpt", "llama", "mlp"}),
      positive("model.num_layers", TESSERA_AT(model.num_layers)),
      positive("model.hidden_size", TESSERA_AT(model.hidden_size)),
      positive("model.num_attention_heads", TESSERA_AT(model.num_attention_heads)),
      ffn_field(),
      // Set by `tessera prune --structured heads=...`: heads * head_dim may differ from hidden_size.
      integer("model.head_dim", TESSERA_AT(model.head_dim), 0,
              "must be a positive integer, or 0 for hidden_size / num_attention_heads"),
      non_negative("model.num_query_groups", TESSERA_AT(model.num_query_groups)),
      number("model.rotary_base", TESSERA_AT(model.rotary_base), is_positive, "must be a positive number"),
      one_of("model.normalization", TESSERA_AT(model.normalization), {"layernorm", "rmsnorm"}),
      number("model.norm_epsilon", TESSERA_AT(model.norm_epsilon), is_positive, "must be a positive number"),
      boolean("model.untie_embeddings_and_output_weights", TESSERA_AT(model.untie_embeddings_and_output_weights)),
      positive("model.seq_length", TESSERA_AT(model.seq_length)),
      vocab_field(),
      one_of("model.activation", TESSERA_AT(model.activation), {"gelu", "relu"}),
      non_negative("model.input_size", TESSERA_AT(model.input_size)),
      non_negative("model.output_size", TESSERA_AT(model.output_size)),
      number("model.init_std", TESSERA_AT(model.init_std), is_positive, "must be a positive number"),

      positive("parallel.tensor_model_parallel_size", TESSERA_AT(parallel.tensor_model_parallel_size)),
      positive("parallel.pipeline_model_parallel_size", TESSERA_AT(parallel.pipeline_model_parallel_size)),
      data_parallel_field(),
      one_of("parallel.schedule", TESSERA_AT(parallel.schedule), {"gpipe", "1f1b", "interleaved"}),
      positive("parallel.virtual_stages", TESSERA_AT(parallel.virtual_stages)),
      partition_field(),
      one_of("parallel.recompute", TESSERA_AT(parallel.recompute), {"none", "full", "selective"}),
      boolean("parallel.sequence_parallel", TESSERA_AT(parallel.sequence_parallel)),
      integer("parallel.zero_stage", TESSERA_AT(parallel.zero_stage), 0, "must be 0, 1, 2 or 3", 3),
      integer("parallel.zero_prefetch", TESSERA_AT(parallel.zero_prefetch), 0, "must be an integer from 0 to 8", 8),
      number("parallel.memory_cap_mib", TESSERA_AT(parallel.memory_cap_mib), is_non_negative,
             "must be a non-negative number"),
      number("parallel.bucket_mb", TESSERA_AT(parallel.bucket_mb), is_positive, "must be a positive number"),
      one_of("parallel.grad_reduce_dtype", TESSERA_AT(parallel.grad_reduce_dtype), {"fp32", "bf16"}),
      number("parallel.timeout_s", TESSERA_AT(parallel.timeout_s), is_positive, "must be a positive number"),
      one_of("parallel.data_parallel_sync", TESSERA_AT(parallel.data_parallel_sync),
             {"allreduce", "local_sgd", "diloco"}),
      positive("parallel.sync_interval", TESSERA_AT(parallel.sync_interval)),
      number("parallel.outer_lr", TESSERA_AT(parallel.outer_lr), is_positive, "must be a positive number"),
      number("parallel.outer_momentum", TESSERA_AT(parallel.outer_momentum), is_momentum,
             "must be in [0, 1)"),
      boolean("parallel.outer_nesterov", TESSERA_AT(parallel.outer_nesterov)),
      positive("parallel.outer_fragments", TESSERA_AT(parallel.outer_fragments)),
      non_negative("parallel.outer_delay", TESSERA_AT(parallel.outer_delay)),
      one_of("parallel.outer_dtype", TESSERA_AT(parallel.outer_dtype), {"fp32", "bf16"}),

      positive("train.micro_batch_size", TESSERA_AT(train.micro_batch_size)),
      positive("train.global_batch_size", TESSERA_AT(train.global_batch_size)),
      positive("train.max_steps", TESSERA_AT(train.max_steps)),
      seed_field(),
      one_of("train.precision", TESSERA_AT(train.precision), {"fp32", "bf16", "fp16"}),
      one_of("train.gemm", TESSERA_AT(train.gemm), {"onednn", "eigen"}),
      one_of("train.device", TESSERA_AT(train.device), {"cpu", "cuda"}),
      boolean("train.allow_tf32", TESSERA_AT(train.allow_tf32)),
      number("train.initial_loss_scale", TESSERA_AT(train.initial_loss_scale), is_positive, "must be a positive number"),
      positive("train.loss_scale_window", TESSERA_AT(train.loss_scale_window)),
      number("train.min_loss_scale", TESSERA_AT(train.min_loss_scale), is_positive, "must be a positive number"),
      one_of("train.on_nan", TESSERA_AT(train.on_nan), {"abort", "skip"}),
      non_negative("train.threads", TESSERA_AT(train.threads)),
      non_negative("train.eval_interval", TESSERA_AT(train.eval_interval)),
      non_negative("train.eval_iters", TESSERA_AT(train.eval_iters)),
      number("train.peak_tflops", TESSERA_AT(train.peak_tflops), is_non_negative,
             "must be a non-negative number"),
      one_of("train.optimizer.name", TESSERA_AT(train.optimizer.name), {"adamw"}),
      number("train.optimizer.lr", TESSERA_AT(train.optimizer.lr), is_positive, "must be a positive number"),
      number("train.optimizer.min_lr", TESSERA_AT(train.optimizer.min_lr), is_non_negative,
             "must be a non-negative number"),
      non_negative("train.optimizer.warmup_steps", TESSERA_AT(train.optimizer.warmup_steps)),
      non_negative("train.optimizer.decay_steps", TESSERA_AT(train.optimizer.decay_steps)),
      betas_field(),
      number("train.optimizer.eps", TESSERA_AT(train.optimizer.eps), is_positive, "must be a positive number"),
      number("train.optimizer.weight_decay", TESSERA_AT(train.optimizer.weight_decay), is_non_negative,
             "must be a non-negative number"),
      number("train.optimizer.grad_clip", TESSERA_AT(train.optimizer.grad_clip), is_finite,
             "must be a number (<= 0 disables clipping)"),

      path("data.path", TESSERA_AT(data.path), false),
      one_of("data.format", TESSERA_AT(data.format), {"text", "tokens"}),
      number("data.val_fraction", TESSERA_AT(data.val_fraction), is_fraction, "must be a number in [0, 0.5]"),
      path("data.val_path", TESSERA_AT(data.val_path), true),
      path("data.tokenizer", TESSERA_AT(data.tokenizer), true),

      path("checkpoint.dir", TESSERA_AT(checkpoint.dir), true),
      non_negative("checkpoint.interval", TESSERA_AT(checkpoint.interval)),
      positive("checkpoint.keep", TESSERA_AT(checkpoint.keep)),
      one_of("checkpoint.resume", TESSERA_AT(checkpoint.resume), {"none", "auto"}),

      // Weights (and pruning masks) to start from at step 0; a resumable checkpoint in
      // checkpoint.dir takes precedence when checkpoint.resume is auto.
      path("init.from", TESSERA_AT(init.from), true),

      number("prune.target_sparsity", TESSERA_AT(prune.target_sparsity), is_sparsity,
             "must be a number in [0, 1) (the fraction of weights pruned at prune.end_step; 0: off)"),
      non_negative("prune.start_step", TESSERA_AT(prune.start_step)),
      non_negative("prune.end_step", TESSERA_AT(prune.end_step)),
      positive("prune.interval", TESSERA_AT(prune.interval)),
      one_of("prune.scope", TESSERA_AT(prune.scope), {"global", "layer"}),

      positive("log.interval", TESSERA_AT(log.interval)),
      path("log.metrics", TESSERA_AT(log.metrics), true),
      path("log.trace", TESSERA_AT(log.trace), true),
      one_of("log.level", TESSERA_AT(log.level), {"trace", "debug", "info", "warn", "error"}),
  };
}

#undef TESSERA_AT

}  // namespace

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = make_schema();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::string show(const Config& c, const std::string& key) {
  const Field* f = find_field(key);
  TESSERA_CHECK(f != nullptr, "no config field '{}'", key);
  return describe(f->write(c));
}

Provenance::Provenance(std::string source) : source_(source.empty() ? "config" : std::move(source)) {}

std::string Provenance::prefix(const std::string& key) const {
  for (const auto& o : overridden_) {
    if (key == o || key.starts_with(o + ".")) return source_ + ": --set ";
  }
  return source_ + ": ";
}

void require(bool ok, const Config& c, const Provenance& where, const std::string& key,
             const std::string& rule) {
  TESSERA_REQUIRE(ok, "{}{} = {}: {}", where.prefix(key), key, show(c, key), rule);
}

}  // namespace tessera::config
