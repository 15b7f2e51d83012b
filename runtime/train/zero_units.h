// ZeRO stages 2 and 3, FSDP style: every layer with parameters is a unit, flattened and padded
// to a multiple of the data-parallel size, and rank r owns block r of every unit.
//   Stage 2: each unit keeps its full fp32 values (the parameters are views into them); its
//   gradient exists only while the unit's backward runs: it is reduce-scattered (non-blocking)
//   right after, into this rank's block, and summed into the shard gradient. After the update
//   the owners' blocks are all-gathered back into the full units.
//   Stage 3: only this rank's blocks exist at rest. A unit is all-gathered just before its
//   forward and again before its backward, with up to `prefetch` units of the same chunk
//   gathered ahead in the pass's direction, and freed after use; gradients as in stage 2.
// Precision: the masters, gradients and moments are fp32. With gather_dtype BF16 or F16 (mixed
// precision: the compute dtype) a stage-3 unit's gathers move 16 bits: each rank sends its block
// rounded and the gathered unit is widened to fp32 for the layer, so its GEMM copies (the same
// rounding of the same values) are what a 1-rank mixed-precision run multiplies by, and only the
// fp32 parameters (norms, biases, embedding rows) see rounded values. With reduce_dtype BF16
// (parallel.grad_reduce_dtype) the unit gradients travel and are summed in bf16, as ZeRO-1's.
// gather_all (checkpoints, pruning) always moves fp32: what it gathers may be written back.
// Set-up: the trainer hands each layer over (adopt) as soon as it is built, so a stage-3 rank
// holds its blocks plus one layer whole at most, never the whole model.
// Tied weights: a table used by two layers (Parameter::tied: the embedding and a head that
// borrows it) is a unit of its own, gathered for every layer that uses it; its gradient
// accumulates over those layers' backwards and is reduce-scattered after the last of them. A
// table tied across pipeline stages (the owner on the first, Parameter::tied_replica on the last)
// is a unit of its own on both, so both copies' blocks line up and the trainer sums the two
// blocks' gradients (block_grad_of) where a replicated run sums the whole gradients.
// Microbatches do not reuse a gathered unit, and every microbatch's gradients are
// reduce-scattered (partitioner/zero_model.h counts the same traffic). The trainer's per-layer
// gradient fix-ups (sequence-parallel sums over tp, pruning masks) run on each microbatch's full
// unit gradient before it is reduce-scattered, which is the same as after summing: they are linear.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/compute/backend.h"
#include "runtime/model/layer_hooks.h"
#include "runtime/model/model.h"
#include "runtime/train/grad_sync.h"
#include "runtime/train/trace.h"

namespace tessera {

class ZeroUnits final : public LayerHooks {
 public:
  // A parameter's part inside this rank's blocks: elements [param_begin, param_begin + numel)
  // of the parameter are `value` (a view of the fp32 master, which stays allocated) and
  // element `shard` on of the shard buffers (gradient, optimizer moments).
  struct Piece {
    Parameter* param = nullptr;
    int64_t param_begin = 0, shard = 0, numel = 0;
    Tensor value;
  };

  // Stage 2 or 3 over `dp` (borrowed), the units on ops' device (borrowed; its casts and sums
  // run there). finalize(layer) is the trainer's gradient fix-up, run before a unit's gradient is
  // reduce-scattered. gather_dtype: F32, BF16 or F16; reduce_dtype: F32 or BF16 (see above).
  // Layers are then added with adopt() and the set closed with seal().
  ZeroUnits(Communicator& dp, Backend& ops, int stage, int prefetch, DType gather_dtype, DType reduce_dtype,
            std::function<void(int)> finalize);
  // The next layer (layers are numbered across chunks in order, as the trainer does), of model
  // chunk `chunk`: its parameters' values move into units, of which stage 3 keeps only this
  // rank's blocks. A layer that borrows a parameter comes after the layer that owns it.
  void adopt(int chunk, Layer& layer);
  // After the last adopt, before the first step: the shard gradient and the pieces exist.
  void seal();
  ~ZeroUnits() override;

  void before_forward(int layer) override;
  void after_forward(int layer) override;
  void before_backward(int layer) override;
  void after_backward(int layer) override;

  int stage() const { return stage_; }
  // Stage 3: each unit's gather goes into the trace as "zero_gather" (from its issue to the
  // moment it was seen complete, when its layer needed it: an upper bound of the collective)
  // and "zero_gather_wait" (the part the layer waited for); the share hidden behind compute is
  // 1 - wait / gather (bench/zero_overlap.py). Borrowed; null: no events.
  void set_trace(TraceRecorder* trace) { trace_ = trace; }
  // Before a step's first microbatch: the shard gradient is zeroed.
  void begin_step();
  // After the last backward: every reduce-scatter is complete and summed into shard_grads().
  void finish();
  // After the optimizer updated the blocks: stage 2 gathers the full units again.
  void after_update();
  // Stage 3: every unit gathered (gather_all) or freed again (release_all), for whatever reads
  // all parameters at once (checkpoints, export, pruning). Collective over dp. take_shards: the
  // full values were overwritten (a checkpoint load): keep this rank's blocks of them.
  void gather_all();
  void release_all();
  void take_shards();

  // Checkpoint loads, one unit whole at a time: a unit's parameters; at stage 3,
  // materialize(unit) binds zeros to them for a load to overwrite and keep_loaded(unit) keeps
  // this rank's block of what was loaded and frees the rest (stage 2 holds every unit whole:
  // both do nothing). Not collective.
  int unit_count() const { return static_cast<int>(units_.size()); }
  const std::vector<Parameter*>& unit_parameters(int unit) const { return units_.at(unit).params; }
  void materialize(int unit);
  void keep_loaded(int unit);

  Tensor& shard_grads() { return shard_grads_; }
  // This rank's block of the summed gradient of a parameter that is a unit of its own.
  Tensor block_grad_of(const Parameter* p);
  int64_t shard_numel() const { return shard_grads_.numel(); }
  const std::vector<Piece>& pieces() const { return pieces_; }
  // A tensor laid out like the shard buffers (an optimizer moment), all-gathered into one
  // full tensor per parameter of `params` (all of them), shaped like it (collective over dp);
  // with no shard, zeros of those shapes for any subset of the parameters (not collective).
  std::vector<Tensor> gather_per_param(const Tensor* shard, const std::vector<Parameter*>& params);
  // The inverse: this rank's blocks of full per-parameter tensors (of any subset of the
  // parameters), into a shard-shaped tensor.
  void scatter_from_params(const std::vector<Tensor>& full, const std::vector<Parameter*>& params, Tensor& shard);
  // Milliseconds the last finish() waited for reduce-scatters after the backward ended.
  double exposed_ms() const { return exposed_ms_; }
  // The last step's reduce-scatters: exposed time, first launch to last completion seen, units.
  GradSyncStats stats() const;

 private:
  struct Unit {
    int layer = 0;          // of the layer that owns the parameters
    int last_backward = 0;  // the lowest layer using them: the last to run its backward
    std::vector<Parameter*> params;
    std::vector<int64_t> offsets;  // of each parameter in the unit
    std::vector<Shape> shapes;     // of each parameter (its value is undefined at rest in stage 3)
    int64_t padded = 0, block = 0, shard_offset = 0;
    Tensor full;  // stage 2: always; stage 3: while gathered
    Tensor rest;  // stage 3: this rank's block, at rest
    Tensor low;  // a 16-bit gather in flight: the unit, rounded (this rank's block in place)
    std::unique_ptr<CommRequest> gathering;
    std::chrono::steady_clock::time_point issued;  // of the gather in flight
    // The unit's gradient (or its bf16 rounding, which is what travels) and this rank's
    // reduced block, while in flight.
    Tensor grad, reduced;
    bool accumulating = false;  // grad is bound and collects this microbatch's backwards
    std::unique_ptr<CommRequest> scattering;
  };
  // A flat buffer of numel on the units' device, zeroed or not.
  Tensor make(int64_t numel, DType dtype, bool zeroed) const;
  // t converted to dtype on the units' device (the 16-bit gathers and reductions).
  Tensor cast_to(const Tensor& t, DType dtype);
  int add_unit(int layer, std::vector<Parameter*> params);
  const std::vector<int>& units_of(int layer) const;
  void bind_grads(Unit& u);
  void start_scatter(Unit& u);
  void start_gather(Unit& u, DType dtype);
  void ensure_gathered(Unit& u);
  void release(Unit& u);
  void bind_values(Unit& u);
  void complete_scatter(Unit& u);
  // The units of the layers of the same chunk after (step 1) or before (step -1) `layer`, up to
  // the prefetch limit of layers.
  void prefetch(int layer, int step);
  Tensor own_block(Unit& u);

  Communicator& dp_;
  Backend& ops_;
  int stage_, prefetch_;
  DType gather_dtype_, reduce_dtype_;
  std::function<void(int)> finalize_;
  TraceRecorder* trace_ = nullptr;
  std::vector<Unit> units_;
  std::vector<std::vector<int>> layer_units_;  // per layer, the units it uses
  std::vector<int> layer_chunk_;
  int64_t shard_total_ = 0;  // elements of this rank's blocks, all units
  bool sealed_ = false;
  Tensor shard_grads_;
  std::vector<Piece> pieces_;
  double exposed_ms_ = 0;
  std::optional<std::chrono::steady_clock::time_point> first_scatter_, last_scatter_;
};

// Every parameter full for a scope (ZeRO-3; nothing otherwise), for what reads or writes all of
// them at once: checkpoints, pruning. Collective over dp. With keep_changes the values were
// written in the scope (a load, pruning): each rank keeps its blocks of them at the end.
class GatheredParameters {
 public:
  GatheredParameters(ZeroUnits* units, bool keep_changes = false);
  ~GatheredParameters();
  GatheredParameters(const GatheredParameters&) = delete;
  GatheredParameters& operator=(const GatheredParameters&) = delete;

 private:
  ZeroUnits* units_;
  bool keep_;
};

}  // namespace tessera
