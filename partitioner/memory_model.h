// The memory model: bytes one rank holds at its peak during a training step, by kind --
// parameters, gradients, optimizer state, saved activations (as many microbatches as the
// pipeline schedule keeps in flight, less with recompute), the backward workspace and
// communication buffers. fp32 as the runtime trains on CPUs; with mixed precision (bf16/fp16)
// the runtime keeps the fp32 masters where the weights are and 16-bit GEMM copies next to them
// (4 + 2 bytes per weight), gradients and moments stay fp32.
// ZeRO (partitioner/zero_model.h for the stages): 1 shards the optimizer state over the dp
// ranks, 2 also the gradients, 3 also the parameters, which are then gathered one unit (a
// layer) at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "partitioner/schedule.h"
#include "partitioner/tp_sharding.h"

namespace tessera {

// parallel.recompute, as runtime/pipeline/stage_executor.cc runs it. None: every layer keeps
// what its backward needs. Selective: the attention probabilities are dropped and recomputed
// (Megatron's selective recompute). Full: a chunk keeps only its input per microbatch and
// reruns its whole forward right before its backward.
enum class Recompute { None, Selective, Full };
Recompute parse_recompute(const std::string& name);  // InputError for other names
std::string recompute_name(Recompute r);

struct MemoryOptions {
  int tp = 1, dp = 1, pp = 1, virtual_stages = 1;
  int microbatches = 1;
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  Recompute recompute = Recompute::None;
  int zero_stage = 0;
  int zero_prefetch = 1;  // parallel.zero_prefetch: ZeRO-3 units gathered ahead of the one computing
  double bucket_bytes = 4.0 * (1 << 20);  // parallel.bucket_mb
  bool mixed_precision = false;  // train.precision bf16/fp16 (activations: TpOptions::element_bytes)
  bool bf16_grad_reduce = false;  // parallel.grad_reduce_dtype: bf16 (the dp link's gradient bytes)
};

struct MemoryBreakdown {
  int64_t params = 0;        // this rank's parameters (its 1/dp shard of them with ZeRO-3)
  int64_t grads = 0;         // its gradients (+ the reduced 1/dp slice with ZeRO-1; with ZeRO-2/3
                             // the slice and two unit-sized gradients: computing, reducing)
  int64_t optimizer = 0;     // AdamW moments
  int64_t gathered = 0;      // ZeRO-3: full units alive, the one computing and the prefetched
  int64_t activations = 0;   // saved activations of the microbatches in flight, at the peak
  int64_t workspace = 0;     // transient buffers of the largest layer's backward (or recompute)
  int64_t comm_buffers = 0;  // gradient bucket and pipeline message buffers
  int in_flight = 0;         // microbatch-chunks in flight at the peak
  int64_t total() const { return params + grads + optimizer + gathered + activations + workspace + comm_buffers; }
};
nlohmann::json to_json(const MemoryBreakdown& m);
MemoryBreakdown memory_from_json(const nlohmann::json& j);

// Layers [first, last) of the layer graph: one pipeline chunk.
struct LayerRange {
  int first = 0, last = 0;
};

// What one chunk keeps per microbatch between its forward and its backward.
int64_t chunk_saved_bytes(const std::vector<ShardedLayer>& layers, LayerRange chunk, Recompute r);
// The largest transient of one backward in the chunk: activation gradients of about the size
// of what the layer saved, plus the incoming and outgoing gradient; with full recompute, the
// rerun forward's activations of the whole chunk (one microbatch) on top.
int64_t chunk_workspace_bytes(const std::vector<ShardedLayer>& layers, LayerRange chunk, Recompute r);

// Peak of the saved activations of pipeline rank `stage` over its schedule, chunk c saving
// saved[c] bytes per microbatch; also returns the in-flight count at that peak.
int64_t peak_saved_bytes(const std::vector<int64_t>& saved, int stage, const MemoryOptions& o,
                         int* in_flight = nullptr);

// The memory of pipeline rank `stage`, holding chunks[c] = global stage c * pp + stage.
MemoryBreakdown stage_memory(const std::vector<ShardedLayer>& layers, const std::vector<LayerRange>& chunks,
                             int stage, const MemoryOptions& o);

// stage_memory(layers, {{first, last}}, stage, o).total() for one-chunk stages in O(last -
// first) from prefix sums: what the balancer asks for every candidate stage.
class RangeMemory {
 public:
  RangeMemory(const std::vector<ShardedLayer>& layers, const MemoryOptions& o);
  int64_t total(int stage, int first, int last) const;

 private:
  // Largest value of table[k] over [first, last) in O(1) (a sparse table per quantity).
  struct RangeMax {
    std::vector<std::vector<int64_t>> levels;
    explicit RangeMax(std::vector<int64_t> values);
    int64_t operator()(int first, int last) const;
  };
  const std::vector<ShardedLayer>& layers_;
  MemoryOptions o_;
  std::vector<int64_t> params_, saved_, activations_;  // prefix sums
  RangeMax transient_;                                 // per-layer backward transient
  RangeMax unit_params_;                               // per-layer parameters (ZeRO-2/3 units)
  std::vector<int> in_flight_;                    // per stage
};

// "31.2 GiB", "412 MiB", "12.0 KiB".
std::string format_bytes(double bytes);

}  // namespace tessera
