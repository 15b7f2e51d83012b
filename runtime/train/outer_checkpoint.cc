// Replica and outer state in checkpoints of local SGD / DiLoCo runs.
#include "runtime/train/outer_checkpoint.h"

#include <filesystem>
#include <fmt/format.h>
#include <map>

#include "core/error.h"
#include "runtime/io/safetensors.h"

namespace tessera {
namespace {

std::string replica_file(const CheckpointLayout& l) {
  return fmt::format("replica.dp{}.tp{}.pp{}.safetensors", l.dp_rank, l.tp_rank, l.pp_rank);
}

// The optimizer's moments laid out like the flat buffers (padding zero).
void flat_moments(const ReplicaState& s, Tensor& m, Tensor& v) {
  m = Tensor::zeros({s.flat->numel()});
  v = Tensor::zeros({s.flat->numel()});
  // The inner optimizer is unsharded: no collective behind gather.
  const CheckpointMoments moments = s.inner->checkpoint_moments(s.params, true);
  std::map<const Parameter*, size_t> index;
  for (size_t i = 0; i < s.params.size(); ++i) index[s.params[i]] = i;
  for (const FlatSegment& seg : s.flat->segments()) {
    const OptimizerMoments& mo = moments.per_param.at(index.at(seg.param));
    m.narrow(seg.offset, seg.numel).copy_from(mo.exp_avg.view({seg.numel}));
    v.narrow(seg.offset, seg.numel).copy_from(mo.exp_avg_sq.view({seg.numel}));
  }
}

// Elements of the flat buffers that hold parameters (the rest is dp padding, which differs
// between dp sizes).
int64_t used_elements(const FlatParameters& flat) {
  const FlatSegment& last = flat.segments().back();
  return last.offset + last.numel;
}

}  // namespace

nlohmann::json outer_checkpoint_extra(const ParallelConfig& p, int dp, bool replicas_identical) {
  return {{"data_parallel_sync", p.data_parallel_sync}, {"dp", dp}, {"sync_interval", p.sync_interval},
          {"outer_fragments", p.outer_fragments}, {"replicas_identical", replicas_identical}};
}

std::function<void(const std::string&)> replica_state_writer(const ReplicaState& s, const CheckpointLayout& mine) {
  std::map<std::string, std::string> metadata;
  std::map<std::string, Tensor> tensors = s.outer->state(metadata);
  Tensor m, v;
  flat_moments(s, m, v);
  tensors["replica.values"] = s.flat->values().clone();
  tensors["replica.exp_avg"] = m;
  tensors["replica.exp_avg_sq"] = v;
  metadata["inner.steps"] = std::to_string(s.inner->steps_taken());
  const std::string name = replica_file(mine);
  return [tensors, metadata, name](const std::string& staging) {
    write_safetensors((std::filesystem::path(staging) / name).string(), tensors, metadata);
  };
}

void check_resumable_without_outer_sync(const std::string& step_dir, const Manifest& manifest) {
  if (!manifest.extra.contains("outer_sync")) return;
  const nlohmann::json& e = manifest.extra["outer_sync"];
  TESSERA_REQUIRE(e.value("replicas_identical", false),
                  "{}: saved with parallel.data_parallel_sync = {} between two syncs, when its {} replicas differ; "
                  "resume it with that setting, or use a checkpoint taken right after a sync",
                  step_dir, e.value("data_parallel_sync", "?"), e.value("dp", 0));
}

void load_replica_state(const std::string& step_dir, const Manifest& manifest, const ReplicaState& s,
                        const CheckpointLayout& mine, const ParallelConfig& parallel) {
  if (!manifest.extra.contains("outer_sync")) {
    s.outer->reset_anchor();  // weights from a synchronous run: the outer sync starts afresh
    return;
  }
  const nlohmann::json& e = manifest.extra["outer_sync"];
  const bool identical = e.value("replicas_identical", false);
  const CheckpointLayout& saved = manifest.layout;
  TESSERA_REQUIRE(saved.tp == mine.tp && saved.pp == mine.pp,
                  "{}: a {} checkpoint (saved under tp {} x pp {}) resumes only under the same tensor and pipeline "
                  "sizes, not tp {} x pp {} (its replica files are per tp/pp shard)",
                  step_dir, e.value("data_parallel_sync", "?"), saved.tp, saved.pp, mine.tp, mine.pp);
  TESSERA_REQUIRE(saved.dp == mine.dp || identical,
                  "{}: saved by {} dp replicas between two syncs (step {} is not right after a sync), when they "
                  "differ; resume it with data_parallel_size {}, or use a checkpoint taken right after a sync "
                  "(a multiple of parallel.sync_interval, with outer_fragments 1) to change the dp size",
                  step_dir, saved.dp, manifest.step, saved.dp);
  if (e.value("data_parallel_sync", "") != parallel.data_parallel_sync ||
      e.value("outer_fragments", 0) != parallel.outer_fragments) {
    TESSERA_REQUIRE(identical,
                    "{}: saved with parallel.data_parallel_sync = {} and outer_fragments = {} between two syncs; "
                    "resume it with those settings, or use a checkpoint taken right after a sync",
                    step_dir, e.value("data_parallel_sync", "?"), e.value("outer_fragments", 0));
    s.outer->reset_anchor();  // the weights (identical on every replica) are already loaded
    return;
  }
  CheckpointLayout source = mine;
  if (saved.dp != mine.dp) source.dp_rank = 0;  // identical replicas: replica 0 stands for all
  const std::string path = (std::filesystem::path(step_dir) / replica_file(source)).string();
  TESSERA_REQUIRE(std::filesystem::exists(path), "{}: missing the replica file {} of a {} checkpoint", step_dir,
                  replica_file(source), e.value("data_parallel_sync", "?"));
  const SafetensorsFile file = read_safetensors(path);
  const auto tensor = [&](const std::string& key) -> const Tensor& {
    const auto it = file.tensors.find(key);
    TESSERA_REQUIRE(it != file.tensors.end() && it->second.dtype() == DType::F32 &&
                        it->second.numel() >= used_elements(*s.flat),
                    "{}: tensor {} is missing or smaller than this rank's {} parameters", path, key,
                    used_elements(*s.flat));
    return it->second;
  };
  const int64_t used = used_elements(*s.flat);
  s.flat->values().narrow(0, used).copy_from(tensor("replica.values").narrow(0, used));
  const Tensor& m = tensor("replica.exp_avg");
  const Tensor& v = tensor("replica.exp_avg_sq");
  CheckpointMoments moments = s.inner->checkpoint_moments(s.params, false);
  std::map<const Parameter*, size_t> index;
  for (size_t i = 0; i < s.params.size(); ++i) index[s.params[i]] = i;
  for (const FlatSegment& seg : s.flat->segments()) {
    OptimizerMoments& mo = moments.per_param.at(index.at(seg.param));
    mo.exp_avg.view({seg.numel}).copy_from(m.narrow(seg.offset, seg.numel));
    mo.exp_avg_sq.view({seg.numel}).copy_from(v.narrow(seg.offset, seg.numel));
  }
  s.inner->load_moments(moments);
  const auto steps = file.metadata.find("inner.steps");
  TESSERA_REQUIRE(steps != file.metadata.end(), "{}: no inner.steps in its metadata", path);
  s.inner->set_steps_taken(std::stoll(steps->second));
  s.outer->load_state(file.tensors, file.metadata);
}

}  // namespace tessera
