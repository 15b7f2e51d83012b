// Saving and loading training checkpoints: one safetensors file per (tp, pp) shard plus a
// manifest.json, in <dir>/step_<N>/, with a `latest` marker naming the newest complete one.
//
// A save is crash safe at every instant: the files are written into <dir>/step_<N>.tmp/
// (each through a temporary name, fsynced, renamed), the manifest last; then the whole
// directory is renamed to step_<N> and only then is `latest` replaced. A killed job leaves
// either no step_<N> at all or a complete one, and `latest` always names a complete one.
// A checkpoint loads under any layout: each parameter's global tensor is rebuilt from the
// saved pieces (the manifest says where each lives) and re-sharded for the loading rank.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/checkpoint/manifest.h"
#include "runtime/comm/communicator.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/parameter.h"

namespace tessera {

class ParallelGrid;
struct ModelConfig;
struct LayerGraph;

// AdamW moments of one parameter, shaped like its local shard.
struct OptimizerMoments {
  Tensor exp_avg, exp_avg_sq;
};

// Elements [begin, begin + value.numel()) of a parameter's local (tp) shard, flattened, that this
// rank owns under ZeRO: the values and moments as 1-D views (of the optimizer's shard buffers).
struct OwnedRange {
  size_t param = 0;  // index into CheckpointState::params
  int64_t begin = 0;
  Tensor value, exp_avg, exp_avg_sq;
};

// What one rank contributes to a save, or receives from a load.
struct CheckpointState {
  int64_t step = 0;                        // training steps done (the data position)
  int64_t optimizer_steps = -1;            // AdamW updates done (bias correction); -1 means `step`
  std::vector<Parameter*> params;          // this rank's parameters (local shards)
  std::vector<OptimizerMoments*> moments;  // parallel to params, or empty (weights only)
  // A dp-sharded save (ZeRO): every dp rank writes only these ranges, with their moments, into
  // its own file; `moments` is then unused and params' values are not read (they may be freed).
  std::optional<std::vector<OwnedRange>> owned;
  // Parameters whose axis 0 is a vocabulary padded to a multiple of tp: name -> real rows.
  // Recorded in the manifest so that loads under another tp and exports can unpad them.
  std::map<std::string, int64_t> padded_rows;
  nlohmann::json extra = nlohmann::json::object();  // saved as is (RNG, loss scale, counters, ...)
  // Called by save_checkpoint on every rank with the staging directory, before the manifest:
  // files of this rank beyond its shard file (local SGD / DiLoCo replica state), written
  // durably; they are committed with the checkpoint.
  std::function<void(const std::string& staging_dir)> write_extra_files;
  // The model's shape, saved as the manifest's "model" so that readers (inference, export)
  // need no config parser; unset for states that are not a whole model's.
  std::optional<ModelConfig> model;
};

// The name -> real rows map of a model's vocab-parallel tables (GPT: wte, lm_head; MLP:
// embedding, head weight and bias), for CheckpointState::padded_rows.
std::map<std::string, int64_t> vocab_padded_rows(const ModelConfig& model, const LayerGraph& graph);
CheckpointLayout checkpoint_layout(const ParallelGrid& grid, int zero_stage);

// What a save wrote.
struct SaveResult {
  std::string step_dir;              // <dir>/step_<N>
  uint64_t bytes = 0;                // all shard files together
  std::vector<std::string> removed;  // step directories pruned by `keep`
};

// Collective over `world` (null for a single process without MPI): dp rank 0 of each
// (tp, pp) shard writes its file (every dp rank its own, when state.owned is set); world rank 0 writes the manifest and `latest` once all files
// are durable, then prunes to the newest `keep` checkpoints (keep <= 0 keeps all). Returns on
// every rank only once the checkpoint is committed. A failure on any rank is thrown on every rank, as
// "saving checkpoint step N failed on rank R: <error>" (InputError when it was one).
SaveResult save_checkpoint(const std::string& dir, const CheckpointState& state,
                           const CheckpointLayout& layout, Communicator* world,
                           const std::string& config_yaml, const nlohmann::json& vocab, int keep);

// ---- The steps of a save, usable without a communicator (tests, offline resharding). ----

// Makes an empty staging directory <dir>/step_<N>.tmp (removing a stale one); returns it.
std::string begin_checkpoint(const std::string& dir, int64_t step);
// One shard's record: its file, and the pieces of the tensors it holds.
struct ShardRecord {
  std::optional<ShardFileEntry> file;  // none when this rank writes nothing (dp rank > 0)
  std::vector<TensorEntry> tensors;    // one piece each
};
nlohmann::json shard_record_to_json(const ShardRecord& record);
ShardRecord shard_record_from_json(const nlohmann::json& json);
// Writes this rank's shard file into `staging_dir` when it is dp rank 0: the tp-split
// parameters' local shards and, on tp rank 0, the replicated ones, each as param.<name>,
// exp_avg.<name> and exp_avg_sq.<name>. With state.owned, every dp rank writes its ranges of
// them (shard_file_name(t, p, d)), and its record lists every tensor it would write whole,
// with the pieces it holds (possibly none), so that the merged manifest keeps model order.
ShardRecord write_shard_file(const std::string& staging_dir, const CheckpointState& state,
                             const CheckpointLayout& layout);
// Merges every rank's record into a manifest (checking that they agree).
Manifest build_manifest(const CheckpointState& state, const CheckpointLayout& layout,
                        const std::string& config_yaml, const nlohmann::json& vocab,
                        const std::vector<ShardRecord>& records);
// Renames the staging directory (which must hold the manifest) to <dir>/step_<N>, replaces
// `latest`, and prunes; the steps of a commit, each made durable before the next.
SaveResult commit_checkpoint(const std::string& dir, int64_t step, int keep);

// ---- Finding and loading. ----

// The newest complete checkpoint under `dir` (its step directory): the one `latest` names,
// else the newest step_<N> with a manifest; nullopt when there is none. Step directories
// without a manifest (a save, or a pruning removal, that did not finish) are skipped with a
// warning.
std::optional<std::string> find_latest_checkpoint(const std::string& dir, std::vector<std::string>* warnings);
// The same, decided by world rank 0 and shared with every rank (collective over `world`,
// which may be null for a single process); warnings are collected on rank 0 only.
std::optional<std::string> find_latest_checkpoint(const std::string& dir, Communicator* world,
                                                  std::vector<std::string>* warnings);
// Complete step directories under `dir`, oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir);

// Loads values (and moments, when state.moments is not empty) into this rank's parameters, and
// their pruning masks (Parameter::mask is set from the checkpoint, or cleared when it has none),
// whatever layout the checkpoint was saved under. Each parameter is found by name, its
// global tensor rebuilt from the saved pieces, padded vocabulary rows adjusted to the
// parameter's global shape, and tp rank `tp_rank` of `tp_size` taken with the parameter's
// own ShardSpec. Values are copied into the existing tensors (they may be views into flat
// buffers); undefined moment tensors are allocated. Returns the step (also set in state,
// with optimizer_steps). InputError naming the file, tensor and rule on any mismatch.
int64_t load_checkpoint(const std::string& step_dir, CheckpointState& state, int tp_rank, int tp_size);

// Reads a checkpoint: the validated manifest, and global tensors assembled from the pieces.
// Shard files are read (and fully validated) on first use and kept until the reader goes away.
class CheckpointReader {
 public:
  explicit CheckpointReader(std::string step_dir);
  const Manifest& manifest() const { return manifest_; }
  const std::string& step_dir() const { return step_dir_; }
  // The global tensor `<prefix>.<name>` (prefix "param", "exp_avg", "exp_avg_sq", or "mask"
  // when entry.masked), with
  // padded rows as saved. InputError when a file or piece is missing or does not match.
  Tensor global(const TensorEntry& entry, const std::string& prefix);
  // The piece of tp rank `tp_rank` (0 for a replicated tensor) of `<prefix>.<name>` as saved
  // under tp, assembled from its dp-sharded parts when it was saved in parts.
  Tensor local_piece(const TensorEntry& entry, const std::string& prefix, int tp_rank);

 private:
  void check_prefix(const TensorEntry& entry, const std::string& prefix) const;
  // The tensor `key` of piece `index` of `entry`, checked against the manifest; for a
  // dp-sharded part, any failure is reported as the parameter's range that is not covered.
  Tensor piece(const TensorEntry& entry, size_t index, const std::string& key);
  Tensor read_piece(const ShardPiece& piece, const std::string& key);
  std::string step_dir_;
  Manifest manifest_;
  // The files' headers, read once each; tensors are read when asked for, so a load holds the
  // parameter it is loading, not the files (a ZeRO-3 resume loads one unit at a time).
  std::map<std::string, SafetensorsReader> files_;
};

// A copy of `global` with shape `shape`, which differs only in axis 0: rows [0, rows) are
// copied and the rest are zero (a vocabulary padded for another tp size).
Tensor resize_padded_rows(const Tensor& global, const Shape& shape, int64_t rows);

}  // namespace tessera
