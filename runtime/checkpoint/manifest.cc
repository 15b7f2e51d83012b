// Manifest JSON: writing, and reading with a check of every rule (a manifest is user input:
// it may be truncated, hand-edited or from another version).
#include "runtime/checkpoint/manifest.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "partitioner/layout_rules.h"
#include "runtime/checkpoint/durable_file.h"
#include "runtime/checkpoint/manifest_pieces.h"

namespace tessera {
namespace {

using nlohmann::json;

// A manifest lists a few entries per parameter; 256 MiB is far beyond any real model's.
constexpr size_t kMaxManifestBytes = 256u << 20;

// Field access that throws InputError "<where>: <rule>" instead of a JSON library message.
class Fields {
 public:
  Fields(const json& object, std::string where, std::string prefix = "")
      : object_(object), where_(std::move(where)), prefix_(std::move(prefix)) {}

  const json& at(const std::string& key) const {
    TESSERA_REQUIRE(object_.contains(key), "{}: missing \"{}{}\"", where_, prefix_, key);
    return object_.at(key);
  }
  int64_t integer(const std::string& key, int64_t min, int64_t max) const {
    const json& v = at(key);
    const bool ok = (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(max) &&
                     static_cast<int64_t>(v.get<uint64_t>()) >= min) ||
                    (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= min &&
                     v.get<int64_t>() <= max);
    TESSERA_REQUIRE(ok, "{}: \"{}{}\" must be an integer in [{}, {}], not {}", where_, prefix_, key, min, max,
                    v.dump());
    return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  }
  std::string string(const std::string& key) const {
    const json& v = at(key);
    TESSERA_REQUIRE(v.is_string(), "{}: \"{}{}\" must be a string, not {}", where_, prefix_, key, v.dump());
    return v.get<std::string>();
  }
  const json& array(const std::string& key) const {
    const json& v = at(key);
    TESSERA_REQUIRE(v.is_array(), "{}: \"{}{}\" must be an array", where_, prefix_, key);
    return v;
  }
  double number(const std::string& key) const {
    const json& v = at(key);
    TESSERA_REQUIRE(v.is_number(), "{}: \"{}{}\" must be a number, not {}", where_, prefix_, key, v.dump());
    return v.get<double>();
  }
  const json& object(const std::string& key) const {
    const json& v = at(key);
    TESSERA_REQUIRE(v.is_object(), "{}: \"{}{}\" must be an object", where_, prefix_, key);
    return v;
  }

 private:
  const json& object_;
  std::string where_;
  std::string prefix_;
};

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxRanks = 1 << 20;

// A JSON integer in [0, 2^63) (parsed text gives unsigned numbers, built JSON signed ones).
bool is_index(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(kMaxInt);
  return v.is_number_integer() && v.get<int64_t>() >= 0;
}
int64_t index_value(const json& v) {
  return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
}

Shape parse_shape(const json& value, const std::string& where, const std::string& what) {
  TESSERA_REQUIRE(value.is_array() && std::all_of(value.begin(), value.end(), is_index),
                  "{}: {} must be an array of non-negative integers, not {}", where, what, value.dump());
  Shape shape;
  for (const json& d : value) shape.push_back(index_value(d));
  // Every size computed from a shape must fit in an int64 (and a byte count in a uint64).
  uint64_t n = 8;
  for (int64_t d : shape) {
    TESSERA_REQUIRE(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || d == 0,
                    "{}: {} {} has more elements than fit in 64 bits", where, what, value.dump());
  }
  return shape;
}

DType parse_dtype(const std::string& name, const std::string& where) {
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::U16}) {
    if (dtype_name(d) == name) return d;
  }
  throw InputError(fmt::format("{}: dtype \"{}\" is not one of F32, BF16, F16, I32, U16", where, name));
}

CheckpointLayout parse_layout(const Fields& root, const std::string& where) {
  const Fields f(root.object("layout"), where, "layout.");
  CheckpointLayout l;
  l.dp = static_cast<int>(f.integer("dp", 1, kMaxRanks));
  l.tp = static_cast<int>(f.integer("tp", 1, kMaxRanks));
  l.pp = static_cast<int>(f.integer("pp", 1, kMaxRanks));
  l.zero_stage = static_cast<int>(f.integer("zero_stage", 0, 3));
  const int64_t world = f.integer("world", 1, kMaxInt);
  TESSERA_REQUIRE(world == int64_t{l.dp} * l.tp * l.pp, "{}: layout.world {} is not dp {} x tp {} x pp {}",
                  where, world, l.dp, l.tp, l.pp);
  return l;
}

json model_to_json(const ModelConfig& c) {
  return {{"arch", c.arch},
          {"num_layers", c.num_layers},
          {"hidden_size", c.hidden_size},
          {"num_attention_heads", c.num_attention_heads},
          {"ffn_hidden_size", c.ffn_hidden_size},
          {"head_dim", c.head_dim},
          {"seq_length", c.seq_length},
          {"vocab", c.vocab},
          {"activation", c.activation},
          {"input_size", c.input_size},
          {"output_size", c.output_size},
          {"init_std", c.init_std},
          {"num_query_groups", c.num_query_groups},
          {"rotary_base", c.rotary_base},
          {"normalization", c.normalization},
          {"norm_epsilon", c.norm_epsilon},
          {"untie_embeddings_and_output_weights", c.untie_embeddings_and_output_weights}};
}

// The llama fields, absent from manifests written before the llama architecture (which keep
// the defaults).
void parse_llama_fields(const json& value, const Fields& f, ModelConfig& c, const std::string& where) {
  constexpr int64_t kMaxSize = 1 << 30;
  if (value.contains("num_query_groups")) c.num_query_groups = static_cast<int>(f.integer("num_query_groups", 0, kMaxSize));
  if (value.contains("rotary_base")) c.rotary_base = static_cast<float>(f.number("rotary_base"));
  if (value.contains("normalization")) c.normalization = f.string("normalization");
  if (value.contains("norm_epsilon")) c.norm_epsilon = static_cast<float>(f.number("norm_epsilon"));
  if (value.contains("untie_embeddings_and_output_weights")) {
    const json& v = value.at("untie_embeddings_and_output_weights");
    TESSERA_REQUIRE(v.is_boolean(), "{}: \"model.untie_embeddings_and_output_weights\" must be true or false", where);
    c.untie_embeddings_and_output_weights = v.get<bool>();
  }
  if (c.arch != "llama") return;
  TESSERA_REQUIRE(c.rotary_base > 0 && c.norm_epsilon > 0, "{}: model.rotary_base and norm_epsilon must be positive",
                  where);
}

// The model's shape rules (partitioner/layout_rules.h), checked again for a file that may have been edited.
ModelConfig parse_model(const json& value, const std::string& where) {
  TESSERA_REQUIRE(value.is_object(), "{}: \"model\" must be an object or null", where);
  const Fields f(value, where, "model.");
  constexpr int64_t kMaxSize = 1 << 30;
  ModelConfig c;
  c.arch = f.string("arch");
  TESSERA_REQUIRE(c.arch == "gpt" || c.arch == "llama" || c.arch == "mlp",
                  "{}: model.arch \"{}\" must be \"gpt\", \"llama\" or \"mlp\"", where, c.arch);
  c.num_layers = static_cast<int>(f.integer("num_layers", 1, kMaxSize));
  c.hidden_size = static_cast<int>(f.integer("hidden_size", 1, kMaxSize));
  c.num_attention_heads = static_cast<int>(f.integer("num_attention_heads", 1, kMaxSize));
  c.ffn_hidden_size = static_cast<int>(f.integer("ffn_hidden_size", 0, kMaxSize));
  c.head_dim = static_cast<int>(f.integer("head_dim", 0, kMaxSize));
  c.seq_length = static_cast<int>(f.integer("seq_length", 1, kMaxSize));
  c.vocab = f.string("vocab");
  c.activation = f.string("activation");
  c.input_size = static_cast<int>(f.integer("input_size", 0, kMaxSize));
  c.output_size = static_cast<int>(f.integer("output_size", 0, kMaxSize));
  c.init_std = static_cast<float>(f.number("init_std"));
  parse_llama_fields(value, f, c, where);
  const std::optional<LayoutViolation> broken = model_shape_violation(c);
  TESSERA_REQUIRE(!broken, "{}: {}", where, broken ? broken->line() : "");
  return c;
}

ShardSpec parse_spec(const json& value, const std::string& where) {
  TESSERA_REQUIRE(value.is_object(), "{}: \"shard\" must be an object", where);
  const Fields f(value, where, "shard.");
  const std::string kind = f.string("kind");
  if (kind == "replicated") return ShardSpec::replicated();
  TESSERA_REQUIRE(kind == "split", "{}: shard.kind \"{}\" must be \"replicated\" or \"split\"", where, kind);
  return ShardSpec::split(static_cast<int>(f.integer("axis", 0, 64)),
                          static_cast<int>(f.integer("blocks", 1, kMaxRanks)));
}

TensorEntry parse_tensor(const json& value, size_t index, const CheckpointLayout& layout,
                         const std::map<std::string, ShardFileEntry>& files, const std::string& path) {
  const std::string at = fmt::format("{}: tensors[{}]", path, index);
  TESSERA_REQUIRE(value.is_object(), "{} must be an object", at);
  const Fields f0(value, at);
  TensorEntry t;
  t.name = f0.string("name");
  TESSERA_REQUIRE(!t.name.empty(), "{} has an empty name", at);
  const std::string where = fmt::format("{}: tensor '{}'", path, t.name);
  const Fields f(value, where);
  t.dtype = parse_dtype(f.string("dtype"), where);
  t.global_shape = parse_shape(f.at("global_shape"), where, "global_shape");
  t.shard = parse_spec(f.at("shard"), where);
  if (t.shard.kind == ShardSpec::Kind::Split) {
    TESSERA_REQUIRE(t.shard.axis < static_cast<int>(t.global_shape.size()),
                    "{}: shard axis {} is out of range for global shape {}", where, t.shard.axis,
                    shape_string(t.global_shape));
    const int64_t len = t.global_shape[t.shard.axis];
    TESSERA_REQUIRE(len % (int64_t{t.shard.blocks} * layout.tp) == 0,
                    "{}: axis {} of global shape {} does not split into {} blocks over tp {}", where,
                    t.shard.axis, shape_string(t.global_shape), t.shard.blocks, layout.tp);
  }
  if (value.contains("rows") && !value.at("rows").is_null()) {
    TESSERA_REQUIRE(!t.global_shape.empty(), "{}: \"rows\" needs a tensor with at least one axis", where);
    t.rows = f.integer("rows", 0, t.global_shape[0]);
  }
  if (value.contains("masked")) {
    TESSERA_REQUIRE(value.at("masked").is_boolean(), "{}: \"masked\" must be true or false, not {}", where,
                    value.at("masked").dump());
    t.masked = value.at("masked").get<bool>();
  }
  t.pp_rank = static_cast<int>(f.integer("pp_rank", 0, layout.pp - 1));
  const json& pieces = f.array("pieces");
  for (size_t j = 0; j < pieces.size(); ++j) {
    const std::string pw = fmt::format("{} pieces[{}]", where, j);
    TESSERA_REQUIRE(pieces[j].is_object(), "{} must be an object", pw);
    const Fields pf(pieces[j], pw);
    ShardPiece p;
    p.file = pf.string("file");
    p.tp_rank = static_cast<int>(pf.integer("tp_rank", 0, layout.tp - 1));
    p.shape = parse_shape(pf.at("shape"), pw, "shape");
    if (pieces[j].contains("elements")) {
      const json& r = pf.array("elements");
      TESSERA_REQUIRE(r.size() == 2 && is_index(r[0]) && is_index(r[1]),
                      "{}: elements must be a [begin, end] pair of non-negative integers, not {}", pw, r.dump());
      p.elements = std::pair(index_value(r[0]), index_value(r[1]));
    }
    const json& ranges = pf.array("ranges");
    for (const json& r : ranges) {
      TESSERA_REQUIRE(r.is_array() && r.size() == 2 && is_index(r[0]) && is_index(r[1]),
                      "{}: ranges must be [begin, end] pairs of non-negative integers, not {}", pw, r.dump());
      p.ranges.emplace_back(index_value(r[0]), index_value(r[1]));
    }
    t.pieces.push_back(std::move(p));
  }
  check_pieces(t, layout, files, where);
  return t;
}

}  // namespace

const TensorEntry* Manifest::find(const std::string& name) const {
  for (const TensorEntry& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::pair<int64_t, int64_t>> shard_ranges(const Shape& global, const ShardSpec& spec, int rank,
                                                      int ranks) {
  if (spec.kind == ShardSpec::Kind::Replicated) return {};
  const int64_t block = global[spec.axis] / spec.blocks, part = block / ranks;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int b = 0; b < spec.blocks; ++b) {
    ranges.emplace_back(b * block + rank * part, b * block + (rank + 1) * part);
  }
  return ranges;
}

std::string shard_spec_string(const ShardSpec& spec) {
  if (spec.kind == ShardSpec::Kind::Replicated) return "replicated";
  if (spec.blocks == 1) return fmt::format("split(axis {})", spec.axis);
  return fmt::format("split(axis {}, {} blocks)", spec.axis, spec.blocks);
}

std::string shard_file_name(int tp_rank, int pp_rank, int dp_rank) {
  if (dp_rank >= 0) return fmt::format("shard_tp{}_pp{}_dp{}.safetensors", tp_rank, pp_rank, dp_rank);
  return fmt::format("shard_tp{}_pp{}.safetensors", tp_rank, pp_rank);
}

std::string element_range_string(const std::pair<int64_t, int64_t>& range) {
  return fmt::format("[{}, {})", range.first, range.second);
}

json manifest_to_json(const Manifest& m) {
  json files = json::array();
  for (const ShardFileEntry& f : m.files) {
    json entry = {{"name", f.name}, {"tp_rank", f.tp_rank}, {"pp_rank", f.pp_rank}, {"bytes", f.bytes}};
    if (f.dp_rank >= 0) entry["dp_rank"] = f.dp_rank;
    files.push_back(std::move(entry));
  }
  json tensors = json::array();
  for (const TensorEntry& t : m.tensors) {
    json shard = t.shard.kind == ShardSpec::Kind::Replicated
                     ? json{{"kind", "replicated"}}
                     : json{{"kind", "split"}, {"axis", t.shard.axis}, {"blocks", t.shard.blocks}};
    json pieces = json::array();
    for (const ShardPiece& p : t.pieces) {
      json ranges = json::array();
      for (const auto& [b, e] : p.ranges) ranges.push_back({b, e});
      json piece = {{"file", p.file}, {"tp_rank", p.tp_rank}, {"shape", p.shape}, {"ranges", ranges}};
      if (p.elements) piece["elements"] = {p.elements->first, p.elements->second};
      pieces.push_back(std::move(piece));
    }
    json entry = {{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"global_shape", t.global_shape},
                  {"shard", shard}, {"pp_rank", t.pp_rank},         {"pieces", pieces}};
    if (t.rows >= 0) entry["rows"] = t.rows;
    if (t.masked) entry["masked"] = true;
    tensors.push_back(std::move(entry));
  }
  const CheckpointLayout& l = m.layout;
  return {{"format", kCheckpointFormat},
          {"version", m.version},
          {"step", m.step},
          {"data", {{"step", m.step}, {"note", "batches are a pure function of (train.seed, step)"}}},
          {"optimizer", {{"steps", m.optimizer_steps}, {"moments", m.moments}}},
          {"layout",
           {{"world", l.dp * l.tp * l.pp},
            {"dp", l.dp},
            {"tp", l.tp},
            {"pp", l.pp},
            {"zero_stage", l.zero_stage}}},
          {"config_yaml", m.config_yaml},
          {"model", m.model ? model_to_json(*m.model) : json(nullptr)},
          {"vocabulary", m.vocabulary},
          {"extra", m.extra},
          {"files", files},
          {"tensors", tensors}};
}

Manifest manifest_from_json(const json& root, const std::string& path) {
  TESSERA_REQUIRE(root.is_object(), "{}: must be a JSON object", path);
  const Fields f(root, path);
  TESSERA_REQUIRE(f.at("format") == kCheckpointFormat, "{}: \"format\" must be \"{}\", not {}", path,
                  kCheckpointFormat, f.at("format").dump());
  Manifest m;
  m.path = path;
  m.version = static_cast<int>(f.integer("version", 0, kMaxInt));
  TESSERA_REQUIRE(m.version == kCheckpointVersion,
                  "{}: format version {} is not supported (this build reads version {})", path, m.version,
                  kCheckpointVersion);
  m.step = f.integer("step", 0, kMaxInt);
  const Fields opt(f.object("optimizer"), path, "optimizer.");
  m.optimizer_steps = opt.integer("steps", 0, kMaxInt);
  for (const json& name : opt.array("moments")) {
    TESSERA_REQUIRE(name == "exp_avg" || name == "exp_avg_sq",
                    "{}: optimizer.moments may only name \"exp_avg\" and \"exp_avg_sq\", not {}", path,
                    name.dump());
    TESSERA_REQUIRE(std::find(m.moments.begin(), m.moments.end(), name.get<std::string>()) == m.moments.end(),
                    "{}: optimizer.moments names {} twice", path, name.dump());
    m.moments.push_back(name.get<std::string>());
  }
  m.layout = parse_layout(f, path);
  m.config_yaml = f.string("config_yaml");
  if (root.contains("model") && !root.at("model").is_null()) m.model = parse_model(root.at("model"), path);
  m.vocabulary = f.at("vocabulary");
  TESSERA_REQUIRE(m.vocabulary.is_object() || m.vocabulary.is_null(),
                  "{}: \"vocabulary\" must be an object or null", path);
  if (root.contains("extra")) m.extra = f.object("extra");

  std::map<std::string, ShardFileEntry> files;
  const json& file_list = f.array("files");
  for (size_t i = 0; i < file_list.size(); ++i) {
    const std::string where = fmt::format("{}: files[{}]", path, i);
    TESSERA_REQUIRE(file_list[i].is_object(), "{} must be an object", where);
    const Fields ff(file_list[i], where);
    ShardFileEntry e;
    e.name = ff.string("name");
    e.tp_rank = static_cast<int>(ff.integer("tp_rank", 0, m.layout.tp - 1));
    e.pp_rank = static_cast<int>(ff.integer("pp_rank", 0, m.layout.pp - 1));
    e.bytes = static_cast<uint64_t>(ff.integer("bytes", 0, kMaxInt));
    if (file_list[i].contains("dp_rank")) e.dp_rank = static_cast<int>(ff.integer("dp_rank", 0, m.layout.dp - 1));
    // The name is derived, never free: a manifest cannot point outside its directory.
    TESSERA_REQUIRE(e.name == shard_file_name(e.tp_rank, e.pp_rank, e.dp_rank),
                    "{}: name \"{}\" must be \"{}\" for tp_rank {} and pp_rank {}{}", where, e.name,
                    shard_file_name(e.tp_rank, e.pp_rank, e.dp_rank), e.tp_rank, e.pp_rank,
                    e.dp_rank >= 0 ? fmt::format(" (dp_rank {})", e.dp_rank) : "");
    TESSERA_REQUIRE(files.emplace(e.name, e).second, "{}: \"{}\" is listed twice", where, e.name);
    m.files.push_back(e);
  }
  const json& tensor_list = f.array("tensors");
  std::set<std::string> names;
  for (size_t i = 0; i < tensor_list.size(); ++i) {
    TensorEntry t = parse_tensor(tensor_list[i], i, m.layout, files, path);
    TESSERA_REQUIRE(names.insert(t.name).second, "{}: tensor '{}' is listed twice", path, t.name);
    m.tensors.push_back(std::move(t));
  }
  return m;
}

Manifest read_manifest(const std::string& step_dir) {
  const std::string path = (std::filesystem::path(step_dir) / kManifestFile).string();
  const std::string text = checkpoint_io::read_small_file(path, kMaxManifestBytes);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  return manifest_from_json(root, path);
}

void write_manifest(const std::string& step_dir, const Manifest& manifest) {
  const std::string path = (std::filesystem::path(step_dir) / kManifestFile).string();
  checkpoint_io::write_file_durably(path, manifest_to_json(manifest).dump(1) + "\n");
}

}  // namespace tessera
