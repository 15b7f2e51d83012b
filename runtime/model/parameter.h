// Parameters and how they are sharded across the tensor-parallel group (ShardSpec), plus
// deterministic initialisation of the global tensor so every layout starts from the same
// weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

// How a parameter's global tensor maps onto the tp ranks. Split divides `axis` into `blocks`
// equal contiguous parts (3 for the fused q|k|v weight) and gives each rank its 1/tp of every
// part, so heads stay whole on a rank.
struct ShardSpec {
  enum class Kind { Replicated, Split };
  Kind kind = Kind::Replicated;
  int axis = 0;
  int blocks = 1;
  static ShardSpec replicated() { return {}; }
  static ShardSpec split(int axis, int blocks = 1) { return {Kind::Split, axis, blocks}; }
};

struct Parameter {
  std::string name;    // global name, e.g. "h.0.attn.c_attn.weight"
  Shape global_shape;  // unsharded shape
  ShardSpec shard;
  Tensor value;        // this rank's shard
  Tensor grad;         // same shape as value
  bool weight_decay = false;  // nanoGPT: decay matrices and embeddings, not biases or norms
  // With sequence parallelism a replicated parameter applied to this rank's rows only (norms,
  // biases after a row-parallel layer) gets a partial gradient: it is summed over tp after
  // backward.
  bool sequence_parallel_grad = false;
  // A copy of a parameter that another pipeline stage owns: the last stage's head tied to the
  // first stage's embedding table (Megatron's embedding group). Same name and initial values as
  // the owner; its gradient is summed with the owner's every step (TiedEmbeddingSync), so both
  // take the same updates; it is counted once in the gradient norm and saved by the owner only.
  bool tied_replica = false;
  // Used by two layers: an embedding table tied to the head, on this stage (the head borrows
  // it, Layer::borrowed_parameters) or another (the head holds a tied_replica). ZeRO-2/3 keep
  // such a table, and its copy, in a unit of its own (runtime/train/zero_units.h).
  bool tied = false;
  // Pruning mask (1 keeps, 0 prunes), shaped like `value`; undefined for a dense parameter.
  // The trainer zeroes masked gradients and the optimizers re-zero masked weights and moments,
  // so pruned weights stay exactly zero (runtime/compression/mask.h).
  Tensor mask;
  // The grad holds zeros nothing has added to since it was zeroed, so the first weight gradient
  // may be written instead of added (a GEMM that does not read its output back: ~4% of a
  // weight-gradient GEMM here). Set where grads are zeroed, never for a tied table, whose grad
  // has a second writer (the embedding's scatter); cleared by the weight-gradient GEMM of
  // Compute::linear_backward. A layer that adds to such a grad by other means first clears it.
  bool grad_zero = false;
  // Low-precision copy of `value` for GEMMs under mixed precision, kept by Compute::weight
  // (runtime/compute/compute.h): remade from the master when its version is stale.
  Tensor compute_copy;
  uint64_t compute_copy_version = 0;
};

// Shape of rank `rank`'s shard of a tensor of shape `global` out of `ranks`.
Shape shard_shape(const Shape& global, const ShardSpec& spec, int ranks);
// Copies rank `rank`'s shard out of a global tensor.
Tensor take_shard(const Tensor& global, const ShardSpec& spec, int rank, int ranks);
// Writes a shard back into its place in a global tensor (the inverse of take_shard).
void place_shard(Tensor& global, const Tensor& shard, const ShardSpec& spec, int rank, int ranks);

// N(0, std) entries from a generator seeded by (seed, name): the same on every rank and layout.
Tensor init_normal(const Shape& global, float std, uint64_t seed, const std::string& name);

// Makes a Parameter: initialises the global tensor (normal std, or constant `fill` when
// std == 0) and keeps this rank's shard; the grad is zeroed.
Parameter make_parameter(const std::string& name, const Shape& global, const ShardSpec& spec,
                         int tp_rank, int tp_size, float std, float fill, uint64_t seed,
                         bool weight_decay);

}  // namespace tessera
