// Parameter sharding and deterministic initialisation.
#include "runtime/model/parameter.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

namespace tessera {
namespace {

// Views a tensor as [outer, axis_len, inner] around `axis`.
struct AxisView {
  int64_t outer = 1, axis_len = 1, inner = 1;
};

AxisView axis_view(const Shape& shape, int axis) {
  AxisView v;
  for (int i = 0; i < axis; ++i) v.outer *= shape[i];
  v.axis_len = shape[axis];
  for (size_t i = axis + 1; i < shape.size(); ++i) v.inner *= shape[i];
  return v;
}

// Calls f(global_row_offset, shard_row_offset, rows) for each contiguous run of the axis that
// belongs to `rank`, in units of elements along the axis.
template <typename F>
void for_each_shard_run(const Shape& global, const ShardSpec& spec, int rank, int ranks, F f) {
  const int64_t len = global[spec.axis];
  TESSERA_CHECK(len % (static_cast<int64_t>(spec.blocks) * ranks) == 0,
                "axis {} of {} is not divisible into {} blocks over {} ranks", spec.axis,
                shape_string(global), spec.blocks, ranks);
  const int64_t block = len / spec.blocks, part = block / ranks;
  for (int b = 0; b < spec.blocks; ++b) f(b * block + rank * part, b * part, part);
}

void copy_runs(const Tensor& src, Tensor& dst, const Shape& global, const ShardSpec& spec, int rank,
               int ranks, bool to_shard) {
  const AxisView g = axis_view(global, spec.axis);
  const int64_t shard_len = global[spec.axis] / ranks;
  const float* s = src.f32();
  float* d = dst.f32();
  for_each_shard_run(global, spec, rank, ranks, [&](int64_t goff, int64_t soff, int64_t n) {
    for (int64_t o = 0; o < g.outer; ++o) {
      const int64_t gi = (o * g.axis_len + goff) * g.inner;
      const int64_t si = (o * shard_len + soff) * g.inner;
      if (to_shard) {
        std::memcpy(d + si, s + gi, sizeof(float) * n * g.inner);
      } else {
        std::memcpy(d + gi, s + si, sizeof(float) * n * g.inner);
      }
    }
  });
}

}  // namespace

Shape shard_shape(const Shape& global, const ShardSpec& spec, int ranks) {
  if (spec.kind == ShardSpec::Kind::Replicated) return global;
  TESSERA_CHECK(spec.axis >= 0 && spec.axis < static_cast<int>(global.size()), "bad shard axis {}",
                spec.axis);
  Shape s = global;
  TESSERA_CHECK(s[spec.axis] % ranks == 0, "axis {} of {} not divisible by {}", spec.axis,
                shape_string(global), ranks);
  s[spec.axis] /= ranks;
  return s;
}

Tensor take_shard(const Tensor& global, const ShardSpec& spec, int rank, int ranks) {
  if (spec.kind == ShardSpec::Kind::Replicated || ranks == 1) return global.clone();
  Tensor shard = Tensor::empty(shard_shape(global.shape(), spec, ranks));
  copy_runs(global, shard, global.shape(), spec, rank, ranks, true);
  return shard;
}

void place_shard(Tensor& global, const Tensor& shard, const ShardSpec& spec, int rank, int ranks) {
  if (spec.kind == ShardSpec::Kind::Replicated || ranks == 1) {
    global.copy_from(shard);
    return;
  }
  copy_runs(shard, global, global.shape(), spec, rank, ranks, false);
}

Tensor init_normal(const Shape& global, float std, uint64_t seed, const std::string& name) {
  // Seed from (seed, name) so a parameter's values do not depend on construction order.
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(std::hash<std::string>{}(name))};
  std::mt19937_64 gen(seq);
  Tensor t = Tensor::empty(global);
  float* p = t.f32();
  // Box-Muller by hand: std::normal_distribution differs between standard libraries.
  const double two_pi = 6.283185307179586;
  for (int64_t i = 0; i < t.numel(); i += 2) {
    const double u1 = (static_cast<double>(gen() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(gen() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = static_cast<float>(std * r * std::cos(two_pi * u2));
    if (i + 1 < t.numel()) p[i + 1] = static_cast<float>(std * r * std::sin(two_pi * u2));
  }
  return t;
}

Parameter make_parameter(const std::string& name, const Shape& global, const ShardSpec& spec,
                         int tp_rank, int tp_size, float std, float fill, uint64_t seed,
                         bool weight_decay) {
  Parameter p;
  p.name = name;
  p.global_shape = global;
  p.shard = spec;
  p.weight_decay = weight_decay;
  if (std > 0) {
    p.value = take_shard(init_normal(global, std, seed, name), spec, tp_rank, tp_size);
  } else {
    p.value = Tensor::full(shard_shape(global, spec, tp_size), fill);
  }
  p.grad = Tensor::zeros(p.value.shape());
  return p;
}

}  // namespace tessera
