// Helpers shared by the checkpoint tests (defined in test_checkpoint_util.cc): a single-rank
// communicator, temporary directories, and "simulated layouts": every (tp, pp) shard of a
// tiny model built in one process, with values that are a pure function of (parameter name,
// global index), so any layout's expected shard is known.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/model/model.h"

namespace tessera::ckpt_test {
struct Shard {
  std::unique_ptr<Model> model;
  std::vector<OptimizerMoments> moments;
  int tp_rank = 0, pp_rank = 0;
};
struct SimRun {
  ModelConfig config;
  LayerGraph graph;
  int tp = 1, pp = 1;
  std::vector<Shard> shards;  // index pp_rank * tp + tp_rank
  CheckpointState state(size_t i, bool with_moments = true);
  CheckpointLayout layout(size_t i) const;
};
std::unique_ptr<Communicator> local_world();
std::string make_temp_dir();
// A temporary directory removed with everything in it when the test ends.
struct TempDir {
  std::string path = make_temp_dir();
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  std::string operator/(const std::string& name) const;
};
std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);
Tensor expected_global(const std::string& name, const Shape& shape, int salt);
SimRun build_run(const std::string& arch, int tp, int pp, bool fill);
SaveResult save_run(SimRun& run, const std::string& dir, int64_t step, int keep, bool with_moments = true);
void load_run(SimRun& run, const std::string& step_dir, bool with_moments = true);
bool same_bits(const Tensor& a, const Tensor& b);
void check_run(SimRun& run, int saved_tp, bool with_moments = true);
}  // namespace tessera::ckpt_test
