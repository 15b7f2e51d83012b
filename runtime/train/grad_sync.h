// Data-parallel gradient averaging. Without ZeRO, gradients are all-reduced in buckets
// (contiguous ranges of the flat gradient buffer, filled in backward order) that are launched
// during the last microbatch's backward as soon as every parameter in them has its gradient,
// and progressed between layers, so communication overlaps the remaining backward compute.
// With ZeRO-1 the flat gradient is reduce-scattered after backward: each rank receives the
// summed gradient of its 1/dp shard only. The reduction runs in fp32, or in bf16 when asked
// (parallel.grad_reduce_dtype): half the bytes, each partial sum rounded to bf16 — the gradients
// are cast into a bf16 staging buffer, reduced, and widened back into the fp32 buffers.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/compute/backend.h"
#include "runtime/train/flat_parameters.h"

namespace tessera {

// Timing of the last step's gradient communication, for overlap reports.
struct GradSyncStats {
  double exposed_ms = 0;  // time spent waiting for communication after backward ended
  double comm_span_ms = 0;  // first bucket launch to last bucket completion
  int buckets = 0;
};

class GradientSync {
 public:
  // bucket_bytes <= 0: one bucket. zero_stage 1: reduce-scatter instead of all-reduce.
  // reduce_dtype: F32 or BF16, what travels and is summed; `ops` (borrowed, the gradients'
  // device) rounds to it and back.
  GradientSync(FlatParameters& flat, Communicator& dp, double bucket_bytes, int zero_stage, DType reduce_dtype,
               Backend& ops);

  // Call after layer `layer` finished its backward of the last microbatch of the step.
  void on_layer_backward_done(int layer);
  // Completes all communication; with ZeRO-1 fills shard_grads().
  void finish();
  const GradSyncStats& stats() const { return stats_; }

  // ZeRO-1: this rank's range of the flat buffers and its reduced gradient shard.
  int64_t shard_offset() const { return shard_offset_; }
  int64_t shard_numel() const { return shard_numel_; }
  Tensor& shard_grads() { return shard_grads_; }

 private:
  struct Bucket {
    int64_t offset = 0, numel = 0;
    int last_layer = 0;  // the bucket is ready once this layer's backward is done
    std::unique_ptr<CommRequest> request;
    Tensor staging;  // the bucket in the reduce dtype while it is reduced (bf16 only)
    std::chrono::steady_clock::time_point launched, done;
    bool complete = false;
  };
  void poll();
  // Marks a finished bucket done and, under bf16, widens its reduced values back.
  void complete(Bucket& b);

  FlatParameters& flat_;
  Communicator& dp_;
  int zero_stage_;
  DType reduce_dtype_;
  Backend& ops_;
  std::vector<Bucket> buckets_;
  size_t next_bucket_ = 0;
  int64_t shard_offset_ = 0, shard_numel_ = 0;
  Tensor shard_grads_;
  GradSyncStats stats_;
};

}  // namespace tessera
