// Communication-light data parallelism: local SGD, DiLoCo and streaming DiLoCo.
//
// Each dp replica (a whole tp x pp group) trains with its own AdamW on its own batches, and
// the replicas talk only every H = sync_interval steps. At a sync, local SGD replaces the
// parameters with the replicas' average; DiLoCo instead treats the averaged change since the
// last sync, anchor - mean(theta_r), as the gradient of an outer Nesterov SGD step on the
// anchor (runtime/train/outer_optimizer.h), and every replica restarts from the new anchor.
//
// Streaming (Douillard et al., 2025): the model is cut into F fragments of whole blocks;
// fragment f syncs at steps s with s % H == ((f + 1) * H / F) % H, so the link carries one
// fragment at a time, and its all-reduce runs in the background (non-blocking MPI) while
// tau = outer_delay more inner steps run; it is applied after step s + tau, replacing that
// fragment's parameters (the paper's mixing factor 0: the tau local steps on it are dropped).
// Open MPI moves a non-blocking collective only inside MPI calls, so the outer sync is also
// the model's layer hooks: it tests its reductions in flight after every layer's forward and
// backward, which keeps the link busy while the inner steps compute (without that, the
// whole transfer happened in the wait at the apply step).
//
// With zero_stage 1 the outer state (anchor, momentum) is sharded over dp like ZeRO-1: the
// replicas' parameters are reduce-scattered, each rank steps its shard, and the new anchor is
// all-gathered (blocking, so outer_delay must be 0 there).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "runtime/model/layer_hooks.h"
#include "runtime/comm/communicator.h"
#include "runtime/train/flat_parameters.h"
#include "runtime/train/outer_optimizer.h"

namespace tessera {

struct OuterSyncConfig {
  bool diloco = true;  // false: local SGD (plain averaging)
  int interval = 1;    // H
  int fragments = 1;
  int delay = 0;       // tau
  bool bf16 = false;   // outer deltas travel in bfloat16
  bool sharded = false;  // outer state sharded over dp (zero_stage 1)
  OuterStepConfig step;
};

// The outer settings of a config whose parallel.data_parallel_sync is local_sgd or diloco.
OuterSyncConfig outer_sync_config(const ParallelConfig& parallel);

// The fragment of each local layer, from its index in the layer graph: block b (graph layer
// b + 1) of num_layers goes to fragment b * fragments / num_layers, the embedding (layer 0)
// to the first, the head (and any layer after the blocks) to the last.
std::vector<int> outer_fragment_of_layers(const std::vector<int>& graph_layer, int num_layers, int fragments);

// Bytes one rank sends in a ring all-reduce of `bytes` over `ranks` ranks; a reduce-scatter
// plus an all-gather of the same buffer send as many.
double ring_all_reduce_bytes(double bytes, int ranks);

// Per step: what the outer sync sent and how long the step waited for it.
struct OuterSyncStats {
  double bytes = 0;    // sent by this rank (ring estimate)
  double wait_ms = 0;  // blocked on the dp link
};

class OuterSync final : public LayerHooks {
 public:
  // fragment_of_layer[l]: the fragment of local layer l (FlatSegment::layer). dp may be null
  // or of size 1: one replica, whose outer step still runs, without communication. The anchor
  // starts as the current parameters, the same on every replica (same seed, or a loaded
  // checkpoint: call reset_anchor after loading weights).
  OuterSync(FlatParameters& flat, Communicator* dp, const OuterSyncConfig& config,
            const std::vector<int>& fragment_of_layer);
  ~OuterSync() override;
  OuterSync(const OuterSync&) = delete;
  OuterSync& operator=(const OuterSync&) = delete;

  // After inner step `step` (steps done, 1-based): launches the fragments due at `step` and
  // applies those launched `delay` steps earlier. Collective over dp (same steps everywhere).
  void after_inner_step(int64_t step);
  const OuterSyncStats& stats() const { return stats_; }
  // Progresses the reductions in flight (MPI_Test); not collective, a no-op when none is.
  // Returns how many are still incomplete.
  int progress();
  void before_forward(int) override {}
  void after_forward(int) override { progress(); }
  void before_backward(int) override {}
  void after_backward(int) override { progress(); }
  // The anchor := the current parameters, outer momentum zero, nothing in flight.
  void reset_anchor();
  // True when every replica holds the same parameters after step `step`: each fragment was
  // applied at `step` (only when fragments == 1), and nothing is in flight.
  bool replicas_identical(int64_t step) const;
  int64_t state_bytes() const;

  // Checkpoints. state() waits for in-flight reductions (they are then applied at their due
  // step as usual) and returns the full, unsharded outer state, collective over dp when
  // sharded: anchor.<f>, momentum.<f>, pending.<f> tensors and each fragment's launch step.
  std::map<std::string, Tensor> state(std::map<std::string, std::string>& metadata);
  // The inverse, keeping this rank's shard; a checkpoint saved by a replica with another dp
  // size is accepted only when it has nothing pending.
  void load_state(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& metadata);

 private:
  struct Range {
    int64_t offset = 0, numel = 0;
  };
  struct Fragment {
    std::vector<Range> ranges;  // in the flat buffers, merged where adjacent
    int64_t numel = 0;          // sum of the ranges
    int64_t padded = 0;         // numel rounded up to a multiple of dp (sharded reductions)
    int phase = 0;              // launches when step % H == phase
    Tensor anchor, momentum;    // full, or this rank's shard of `padded` when sharded
    Tensor send;                // the reduction's buffer (F32, or BF16 for bf16 deltas)
    std::unique_ptr<CommRequest> request;
    int64_t launched = -1;      // step of the reduction not yet applied, -1 when none
    int64_t applied = 0;        // step of the last apply
  };
  bool uses_anchor() const { return config_.diloco || config_.bf16; }
  int dp_size() const { return dp_ != nullptr ? dp_->size() : 1; }
  int64_t shard_begin(const Fragment& f) const;
  void gather_params(const Fragment& f, float* out) const;  // flat ranges -> contiguous
  void scatter_params(const Fragment& f, const float* in);  // contiguous -> flat ranges
  void launch(Fragment& f, int64_t step);
  void apply(Fragment& f, int64_t step);
  void apply_sharded(Fragment& f, int64_t step);
  void wait(Fragment& f);

  FlatParameters& flat_;
  Communicator* dp_;
  OuterSyncConfig config_;
  std::vector<Fragment> fragments_;
  OuterSyncStats stats_;
};

}  // namespace tessera
