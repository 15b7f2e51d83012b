// inspect / export / reshard over the checkpoint reader and the save steps.
#include "runtime/checkpoint/checkpoint_tools.h"

#include <fmt/ranges.h>

#include <array>
#include <exception>
#include <filesystem>
#include <map>

#include "kernels/cast.h"
#include "runtime/model/embedding_layer.h"

namespace tessera {
namespace fs = std::filesystem;

namespace {

std::string bytes_string(uint64_t bytes) {
  if (bytes >= (1u << 20)) return fmt::format("{:.1f} MiB", bytes / 1048576.0);
  if (bytes >= 1024) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{} B", bytes);
}

// The tensor's shape with vocabulary padding removed.
Shape unpadded_shape(const TensorEntry& t) {
  Shape s = t.global_shape;
  if (t.rows >= 0) s[0] = t.rows;
  return s;
}

// Removes a reshard's staging directory, and the output directory when the reshard created it,
// if the reshard fails: a damaged input that shows up only while the new files are written
// must not leave a partial output behind.
class StagingRollback {
 public:
  StagingRollback(std::string staging, std::string created_dir)
      : staging_(std::move(staging)), created_dir_(std::move(created_dir)) {}
  StagingRollback(const StagingRollback&) = delete;
  StagingRollback& operator=(const StagingRollback&) = delete;
  ~StagingRollback() {
    if (std::uncaught_exceptions() == exceptions_) return;
    std::error_code ec;
    fs::remove_all(staging_, ec);
    if (!created_dir_.empty()) fs::remove(created_dir_, ec);  // only if nothing else is there
  }

 private:
  std::string staging_, created_dir_;
  int exceptions_ = std::uncaught_exceptions();
};

}  // namespace

std::string resolve_checkpoint(const std::string& path) {
  if (fs::is_regular_file(fs::path(path) / kManifestFile)) return path;
  const auto found = find_latest_checkpoint(path, nullptr);
  TESSERA_REQUIRE(found.has_value(), "{}: not a checkpoint (no {} here and no complete step_<N> directory)",
                  path, kManifestFile);
  return *found;
}

std::string inspect_checkpoint(const std::string& step_dir) {
  const Manifest m = read_manifest(step_dir);
  const CheckpointLayout& l = m.layout;
  std::string out =
      fmt::format("checkpoint {} (format {} version {})\n", step_dir, kCheckpointFormat, m.version);
  out += fmt::format("step: {} (optimizer steps {}; moments: {})\n", m.step, m.optimizer_steps,
                     m.moments.empty() ? std::string("none") : fmt::format("{}", fmt::join(m.moments, ", ")));
  out += fmt::format("layout: dp {}, tp {}, pp {}, zero_stage {} (world {})\n", l.dp, l.tp, l.pp,
                     l.zero_stage, l.dp * l.tp * l.pp);
  if (m.vocabulary.is_object()) {
    out += fmt::format("vocabulary: {}, {} entries\n", m.vocabulary.value("kind", std::string("?")),
                       m.vocabulary.value("size", int64_t{-1}));
  }
  uint64_t total_bytes = 0;
  for (const ShardFileEntry& f : m.files) total_bytes += f.bytes;
  out += fmt::format("files: {} ({})\n", m.files.size(), bytes_string(total_bytes));
  for (const ShardFileEntry& f : m.files) {
    out += fmt::format("  {}  tp {}  pp {}{}  {}\n", f.name, f.tp_rank, f.pp_rank,
                       f.dp_rank >= 0 ? fmt::format("  dp {}", f.dp_rank) : "", bytes_string(f.bytes));
  }
  int64_t params = 0;
  size_t width = 4;
  for (const TensorEntry& t : m.tensors) {
    params += shape_numel(unpadded_shape(t));
    width = std::max(width, t.name.size());
  }
  out += fmt::format("tensors: {} ({} parameters)\n", m.tensors.size(), params);
  for (const TensorEntry& t : m.tensors) {
    const std::string rows = t.rows >= 0 ? fmt::format(" ({} real rows)", t.rows) : "";
    out += fmt::format("  {:<{}}  {} {}{}  {}  pp {}{}\n", t.name, width, dtype_name(t.dtype),
                       shape_string(t.global_shape), rows, shard_spec_string(t.shard), t.pp_rank,
                       t.masked ? "  masked" : "");
  }
  if (!m.extra.empty()) out += fmt::format("extra: {}\n", m.extra.dump());
  out += "config:\n";
  std::string line;
  for (char c : m.config_yaml) {
    if (c == '\n') {
      out += "  " + line + "\n";
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) out += "  " + line + "\n";
  return out;
}

std::map<std::string, Tensor> read_global_parameters(CheckpointReader& reader) {
  std::map<std::string, Tensor> tensors;
  for (const TensorEntry& t : reader.manifest().tensors) {
    Tensor g = reader.global(t, "param");
    if (t.rows >= 0) g = resize_padded_rows(g, unpadded_shape(t), t.rows);
    tensors.emplace(t.name, std::move(g));
  }
  return tensors;
}

void export_consolidated(const std::string& step_dir, const std::string& out_path,
                         const ExportOptions& options) {
  CheckpointReader reader(step_dir);
  const Manifest& m = reader.manifest();
  std::map<std::string, Tensor> tensors;
  for (auto& [name, tensor] : read_global_parameters(reader)) {
    Tensor out = tensor;
    if (options.bf16) {
      out = Tensor::empty(tensor.shape(), DType::BF16);
      kernels::cpu::cast_f32_to_bf16(out.data<uint16_t>(), tensor.f32(), tensor.numel());
    }
    tensors.emplace(name == "lm_head.weight" ? name : options.transformer_prefix + name, std::move(out));
  }
  write_safetensors(out_path, tensors,
                    {{"format", "pt"},
                     {"step", std::to_string(m.step)},
                     {"config_yaml", m.config_yaml},
                     {"vocabulary", m.vocabulary.dump()}});
}

SaveResult reshard_checkpoint(const std::string& step_dir, const std::string& out_dir,
                              const CheckpointLayout& layout,
                              const std::function<int(const std::string&)>& stage_of) {
  CheckpointReader reader(step_dir);
  const Manifest& m = reader.manifest();
  TESSERA_REQUIRE(fs::weakly_canonical(out_dir) != fs::weakly_canonical(fs::path(step_dir).parent_path()),
                  "reshard: the output directory {} must differ from the checkpoint's own {}", out_dir,
                  fs::path(step_dir).parent_path().string());
  const bool with_moments = m.moments.size() == 2;
  // The new global shape: vocabulary tables re-padded to a multiple of the new tp.
  std::vector<Shape> shapes;
  for (const TensorEntry& t : m.tensors) {
    Shape s = t.global_shape;
    if (t.rows >= 0) s[0] = padded_vocab(t.rows, layout.tp);
    if (t.shard.kind == ShardSpec::Kind::Split) {
      TESSERA_REQUIRE(s[t.shard.axis] % (int64_t{t.shard.blocks} * layout.tp) == 0,
                      "reshard: tensor '{}' of shape {} cannot be split into {} blocks over tp {} on axis {}",
                      t.name, shape_string(s), t.shard.blocks, layout.tp, t.shard.axis);
    }
    const int stage = stage_of(t.name);
    TESSERA_REQUIRE(stage >= 0 && stage < layout.pp, "reshard: tensor '{}' is put in pipeline stage {} of {}",
                    t.name, stage, layout.pp);
    shapes.push_back(std::move(s));
  }
  CheckpointState base;
  base.step = m.step;
  base.optimizer_steps = m.optimizer_steps;
  base.extra = m.extra;
  base.model = m.model;
  for (const TensorEntry& t : m.tensors) {
    if (t.rows >= 0) base.padded_rows[t.name] = t.rows;
  }
  const bool out_existed = fs::exists(out_dir);
  const std::string staging = begin_checkpoint(out_dir, m.step);
  const StagingRollback rollback(staging, out_existed ? "" : out_dir);
  std::vector<ShardRecord> records;
  for (int pp = 0; pp < layout.pp; ++pp) {
    // One stage's global tensors at a time, shared by its tp shards.
    std::vector<size_t> members;
    std::vector<std::array<Tensor, 4>> globals;  // param, exp_avg, exp_avg_sq, mask
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      const TensorEntry& t = m.tensors[i];
      if (stage_of(t.name) != pp) continue;
      std::array<Tensor, 4> g;
      const char* prefixes[4] = {"param", "exp_avg", "exp_avg_sq", "mask"};
      for (int k = 0; k < 4; ++k) {
        if ((k == 1 || k == 2) && !with_moments) continue;
        if (k == 3 && !t.masked) continue;
        g[k] = reader.global(t, prefixes[k]);
        if (t.global_shape != shapes[i]) g[k] = resize_padded_rows(g[k], shapes[i], t.rows);
      }
      members.push_back(i);
      globals.push_back(std::move(g));
    }
    for (int tp = 0; tp < layout.tp; ++tp) {
      std::vector<Parameter> params(members.size());
      std::vector<OptimizerMoments> moments(members.size());
      CheckpointState state = base;
      for (size_t j = 0; j < members.size(); ++j) {
        const TensorEntry& t = m.tensors[members[j]];
        params[j].name = t.name;
        params[j].global_shape = shapes[members[j]];
        params[j].shard = t.shard;
        params[j].value = take_shard(globals[j][0], t.shard, tp, layout.tp);
        if (t.masked) params[j].mask = take_shard(globals[j][3], t.shard, tp, layout.tp);
        state.params.push_back(&params[j]);
        if (with_moments) {
          moments[j] = {take_shard(globals[j][1], t.shard, tp, layout.tp),
                        take_shard(globals[j][2], t.shard, tp, layout.tp)};
          state.moments.push_back(&moments[j]);
        }
      }
      const CheckpointLayout writer{layout.dp, layout.tp, layout.pp, 0, tp, pp, layout.zero_stage};
      records.push_back(write_shard_file(staging, state, writer));
    }
  }
  CheckpointState manifest_state = base;
  if (with_moments) manifest_state.moments.resize(1);  // only its emptiness matters here
  write_manifest(staging, build_manifest(manifest_state, layout, m.config_yaml, m.vocabulary, records));
  return commit_checkpoint(out_dir, m.step, 0);
}

}  // namespace tessera
