// The checkpoint manifest (manifest.json in a step directory): what was saved, under which
// layout, and where every piece of every tensor lives, so that a checkpoint saved under one
// (dp, tp, pp, zero) layout can be loaded under any other.
//
// <checkpoint.dir>/latest                    "step_<N>\n", replaced last (the commit point)
// <checkpoint.dir>/step_<N>/manifest.json    this file
// <checkpoint.dir>/step_<N>/shard_tp<t>_pp<p>.safetensors
//     written by dp rank 0 of shard (t, p): param.<name>, exp_avg.<name>, exp_avg_sq.<name>
//     (and mask.<name> for a pruned parameter: F32 1 = kept, 0 = pruned, sharded as the
//     parameter) for the tp-split parameters of stage p (this rank's shard) and, on t = 0,
//     the replicated ones; __metadata__ {format: pt, step, tp_rank, pp_rank}.
// <checkpoint.dir>/step_<N>/shard_tp<t>_pp<p>_dp<d>.safetensors
//     instead, under ZeRO (sharded optimizer state): every dp rank d writes the element
//     ranges of the shard (t, p) it owns, each tensor flattened to 1-D, and nothing is
//     gathered; the pieces' "elements" say which ranges.
//
// manifest.json (keys sorted):
//   format "tessera-checkpoint", version 1, step (training steps done; batches are a pure
//   function of (train.seed, step), so this is also the data position: data.step),
//   optimizer {steps, moments: ["exp_avg", "exp_avg_sq"] or []},
//   layout {world, dp, tp, pp, zero_stage}, config_yaml (the run's config as saved by the
//   launcher), model (model.* of that config as JSON, or null: {arch, num_layers, hidden_size,
//   num_attention_heads, ffn_hidden_size, head_dim, seq_length, vocab, activation, input_size,
//   output_size, init_std}), vocabulary (Vocabulary::to_json or null), extra (trainer state, opaque here),
//   files [{name, tp_rank, pp_rank, dp_rank (dp-sharded files only), bytes}],
//   tensors [{name, dtype, global_shape, shard {kind: replicated} | {kind: split, axis,
//             blocks}, rows (real rows of a padded vocabulary table; absent otherwise),
//             masked (true when the files hold mask.<name>; absent otherwise),
//             pp_rank, pieces [{file, tp_rank, shape, ranges [[begin, end), ...],
//                               elements [begin, end) (dp-sharded pieces only)}]}]
//   A split tensor has one piece per tp rank (rank r holds, of each of the `blocks` equal
//   parts of the axis, the r-th 1/tp); a replicated tensor has one piece, in tp rank 0's file.
//   In a dp-sharded checkpoint each of those tp pieces is saved in parts: elements [begin, end)
//   of the tp piece flattened row-major, in order, which must cover it exactly.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "runtime/model/parameter.h"

namespace tessera {

inline constexpr const char* kCheckpointFormat = "tessera-checkpoint";
inline constexpr int kCheckpointVersion = 1;
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kLatestFile = "latest";

// The parallel layout a checkpoint was saved under (sizes), plus this rank's coordinates
// when saving.
struct CheckpointLayout {
  int dp = 1, tp = 1, pp = 1;
  int dp_rank = 0, tp_rank = 0, pp_rank = 0;
  int zero_stage = 0;
};

// One rank's part of a tensor: the tensor `<prefix>.<name>` of `file` (for each saved prefix:
// param, exp_avg, exp_avg_sq), of shape `shape`. For a split tensor, `ranges` are the
// [begin, end) intervals of the global tensor along the split axis that it holds, one per
// block, in order; empty for a replicated tensor (the piece is the whole tensor).
// A dp-sharded piece is a part of that: `elements` [begin, end) of the tp piece of shape
// `shape` flattened, saved as a 1-D tensor.
struct ShardPiece {
  std::string file;
  int tp_rank = 0;
  Shape shape;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::optional<std::pair<int64_t, int64_t>> elements;  // dp-sharded pieces only
};

struct TensorEntry {
  std::string name;  // the parameter's global name, e.g. "h.0.attn.c_attn.weight"
  DType dtype = DType::F32;
  Shape global_shape;  // as saved: vocab-parallel rows padded to a multiple of the saved tp
  ShardSpec shard;
  int64_t rows = -1;  // real length of axis 0 when it is padded (vocab-parallel); -1 = not padded
  bool masked = false;  // a pruning mask is saved with it, as mask.<name> in the same pieces
  int pp_rank = 0;
  // replicated: one (tp rank 0); split: one per tp rank, in order; dp-sharded: the parts of
  // each of those, in element order
  std::vector<ShardPiece> pieces;
};

struct ShardFileEntry {
  std::string name;  // shard_file_name(tp_rank, pp_rank, dp_rank), relative to the step directory
  int tp_rank = 0, pp_rank = 0;
  int dp_rank = -1;  // the writing dp rank of a dp-sharded file; -1: the (t, p) shard whole
  uint64_t bytes = 0;
};

struct Manifest {
  std::string path;  // where it was read from (for messages); empty when built in memory
  int version = kCheckpointVersion;
  int64_t step = 0;                  // training steps done; batches are a pure function of (seed, step)
  int64_t optimizer_steps = 0;       // AdamW's update count (bias correction)
  std::vector<std::string> moments;  // saved optimizer moments: "exp_avg", "exp_avg_sq" or none
  CheckpointLayout layout;           // sizes only (ranks are 0)
  std::string config_yaml;           // the run's full config, opaque here
  std::optional<ModelConfig> model;  // the model section of that config, when saved
  nlohmann::json vocabulary;         // Vocabulary::to_json(), or null
  nlohmann::json extra = nlohmann::json::object();  // trainer state this module does not interpret
  std::vector<ShardFileEntry> files;
  std::vector<TensorEntry> tensors;  // in model order (pipeline stage, then layer)

  const TensorEntry* find(const std::string& name) const;  // null when absent
};

// The [begin, end) ranges along spec.axis that tp rank `rank` of `ranks` holds.
std::vector<std::pair<int64_t, int64_t>> shard_ranges(const Shape& global, const ShardSpec& spec, int rank,
                                                      int ranks);
std::string shard_spec_string(
    const ShardSpec& spec);  // "replicated", "split(axis 0)", "split(axis 0, 3 blocks)"
// shard_tp<t>_pp<p>.safetensors, or shard_tp<t>_pp<p>_dp<d>.safetensors for dp rank d >= 0 of a
// dp-sharded checkpoint.
std::string shard_file_name(int tp_rank, int pp_rank, int dp_rank = -1);
// "[begin, end)"
std::string element_range_string(const std::pair<int64_t, int64_t>& range);

nlohmann::json manifest_to_json(const Manifest& manifest);
// Validates every field and every cross-reference (files, tp ranks, shard shapes and ranges);
// throws InputError "<where>: <rule>" on the first violation.
Manifest manifest_from_json(const nlohmann::json& json, const std::string& where);

// Reads <step_dir>/manifest.json. InputError naming the file and the rule when it is missing,
// not JSON, or breaks any rule of the format.
Manifest read_manifest(const std::string& step_dir);
// Writes <step_dir>/manifest.json crash-safely (temporary name, fsync, rename, directory fsync).
void write_manifest(const std::string& step_dir, const Manifest& manifest);

}  // namespace tessera
