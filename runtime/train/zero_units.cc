// ZeRO-2/3 units: sharded storage, gathers before use, reduce-scatters after backward.
#include "runtime/train/zero_units.h"

#include <algorithm>
#include <exception>
#include <map>

#include "core/error.h"
#include "kernels/cast.h"

namespace tessera {
namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// fp32 <-> the 16-bit formats, for what the collectives move.
void narrow_into(const Tensor& f32, Tensor& out) {
  const auto format = out.dtype() == DType::BF16 ? kernels::cpu::Half::BF16 : kernels::cpu::Half::F16;
  kernels::cpu::cast_f32_to_half(format, out.data<uint16_t>(), f32.f32(), f32.numel());
}

Tensor narrowed(const Tensor& f32, DType dtype) {
  Tensor out = Tensor::empty({f32.numel()}, dtype);
  narrow_into(f32, out);
  return out;
}

Tensor widened(const Tensor& half) {
  Tensor out = Tensor::empty({half.numel()});
  if (half.dtype() == DType::BF16) {
    kernels::cpu::cast_bf16_to_f32(out.f32(), half.data<uint16_t>(), half.numel());
  } else {
    kernels::cpu::cast_f16_to_f32(out.f32(), half.data<uint16_t>(), half.numel());
  }
  return out;
}

}  // namespace

ZeroUnits::ZeroUnits(const std::vector<Model*>& chunks, Communicator& dp, int stage, int prefetch, DType gather_dtype,
                     DType reduce_dtype, std::function<void(int)> finalize)
    : dp_(dp),
      stage_(stage),
      prefetch_(prefetch),
      gather_dtype_(gather_dtype),
      reduce_dtype_(reduce_dtype),
      finalize_(std::move(finalize)) {
  TESSERA_CHECK(stage == 2 || stage == 3, "ZeroUnits is for ZeRO stages 2 and 3, not {}", stage);
  TESSERA_CHECK(gather_dtype == DType::F32 || gather_dtype == DType::BF16 || gather_dtype == DType::F16,
                "ZeRO: {} gathers are not supported", dtype_name(gather_dtype));
  TESSERA_CHECK(reduce_dtype == DType::F32 || reduce_dtype == DType::BF16, "ZeRO: {} reductions are not supported",
                dtype_name(reduce_dtype));
  TESSERA_CHECK(prefetch >= 0, "ZeRO prefetch {} < 0", prefetch);
  const int n = dp.size();
  int layer = 0;
  int64_t shard_total = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    for (auto& l : chunks[c]->layers()) {
      std::vector<Parameter*> params = l->parameters();
      unit_index_.push_back(params.empty() ? -1 : static_cast<int>(units_.size()));
      ++layer;
      if (params.empty()) continue;
      Unit u;
      u.chunk = static_cast<int>(c);
      u.layer = layer - 1;
      int64_t numel = 0;
      for (Parameter* p : params) {
        u.offsets.push_back(numel);
        u.shapes.push_back(p->value.shape());
        numel += p->value.numel();
      }
      u.params = std::move(params);
      u.padded = (numel + n - 1) / n * n;
      u.block = u.padded / n;
      u.shard_offset = shard_total;
      shard_total += u.block;
      units_.push_back(std::move(u));
    }
  }
  shard_grads_ = Tensor::zeros({shard_total});
  if (stage_ == 3) shard_values_ = Tensor::zeros({shard_total});
  for (Unit& u : units_) {
    // The layer's own tensors hold the initial values: copied into the unit, after which the
    // layer's allocations go with their last views.
    Tensor full = Tensor::zeros({u.padded});
    for (size_t i = 0; i < u.params.size(); ++i) {
      Parameter* p = u.params[i];
      full.narrow(u.offsets[i], p->value.numel()).view(u.shapes[i]).copy_from(p->value);
      p->grad = Tensor();
    }
    u.full = full;
    bind_values(u);
    if (stage_ == 3) {
      own_block(u).copy_from(u.full.narrow(dp_.rank() * u.block, u.block));
      release(u);
    }
  }
  // Each parameter's overlap with this rank's block [lo, hi) of its unit.
  for (Unit& u : units_) {
    const int64_t lo = dp_.rank() * u.block, hi = lo + u.block;
    const Tensor values = stage_ == 3 ? own_block(u) : u.full.narrow(lo, u.block);
    for (size_t i = 0; i < u.params.size(); ++i) {
      const int64_t begin = u.offsets[i], end = begin + shape_numel(u.shapes[i]);
      const int64_t b = std::max(lo, begin), e = std::min(hi, end);
      if (b < e) pieces_.push_back({u.params[i], b - begin, u.shard_offset + (b - lo), e - b, values.narrow(b - lo, e - b)});
    }
  }
}

ZeroUnits::~ZeroUnits() {
  // Requests still in flight (an exception unwound a step) keep their buffers alive themselves.
  for (Unit& u : units_) {
    u.gathering.reset();
    u.scattering.reset();
  }
}

ZeroUnits::Unit* ZeroUnits::unit_of(int layer) {
  TESSERA_CHECK(layer >= 0 && layer < static_cast<int>(unit_index_.size()), "ZeRO: layer {} of {}", layer,
                unit_index_.size());
  const int u = unit_index_[layer];
  return u < 0 ? nullptr : &units_[u];
}

Tensor ZeroUnits::own_block(Unit& u) {
  return stage_ == 3 ? shard_values_.narrow(u.shard_offset, u.block) : u.full.narrow(dp_.rank() * u.block, u.block);
}

void ZeroUnits::bind_values(Unit& u) {
  for (size_t i = 0; i < u.params.size(); ++i) {
    u.params[i]->value = u.full.narrow(u.offsets[i], shape_numel(u.shapes[i])).view(u.shapes[i]);
  }
}

void ZeroUnits::start_gather(Unit& u, DType dtype) {
  if (u.full.defined() || u.gathering) return;
  u.issued = std::chrono::steady_clock::now();
  if (dtype != DType::F32) {
    // In place: this rank's block is rounded straight into its place in the gathered unit, so
    // no separate send buffer is alive while the gather is in flight.
    u.low = Tensor::empty({u.padded}, dtype);
    Tensor mine = u.low.narrow(dp_.rank() * u.block, u.block);
    narrow_into(own_block(u), mine);
    u.gathering = dp_.all_gather_async(mine, u.low);
    return;
  }
  u.full = Tensor::empty({u.padded});
  u.gathering = dp_.all_gather_async(own_block(u), u.full);
}

void ZeroUnits::ensure_gathered(Unit& u) {
  start_gather(u, gather_dtype_);
  if (!u.gathering) return;
  const auto waited = std::chrono::steady_clock::now();
  u.gathering->wait();
  u.gathering.reset();
  if (trace_) {
    const auto done = std::chrono::steady_clock::now();
    trace_->add("zero_gather", "comm", u.issued, done);
    trace_->add("zero_gather_wait", "comm", waited, done);
  }
  if (u.low.defined()) {
    u.full = widened(u.low);
    u.low = Tensor();
  }
  bind_values(u);
}

void ZeroUnits::release(Unit& u) {
  if (stage_ != 3) return;
  if (u.gathering) {  // a prefetch nobody used: let it land before its buffer goes
    u.gathering->wait();
    u.gathering.reset();
    u.low = Tensor();
  }
  for (Parameter* p : u.params) {
    p->value = Tensor();
    // A mixed-precision run's low-precision copy goes too; it is remade after the next gather.
    p->compute_copy = Tensor();
    p->compute_copy_version = 0;
  }
  u.full = Tensor();
}

void ZeroUnits::prefetch(int layer, int step) {
  const Unit* current = unit_of(layer);
  int started = 0;
  for (int l = layer + step; started < prefetch_ && l >= 0 && l < static_cast<int>(unit_index_.size()); l += step) {
    Unit* u = unit_of(l);
    if (u == nullptr) continue;
    if (current != nullptr && u->chunk != current->chunk) break;
    start_gather(*u, gather_dtype_);
    ++started;
  }
}

void ZeroUnits::before_forward(int layer) {
  if (stage_ != 3) return;
  if (Unit* u = unit_of(layer)) ensure_gathered(*u);
  prefetch(layer, 1);
}

void ZeroUnits::after_forward(int layer) {
  if (Unit* u = unit_of(layer)) release(*u);
}

void ZeroUnits::before_backward(int layer) {
  Unit* u = unit_of(layer);
  if (u == nullptr) return;
  if (stage_ == 3) {
    ensure_gathered(*u);
    prefetch(layer, -1);
  }
  // The previous microbatch's reduce-scatter of this unit must land before its buffers go.
  complete_scatter(*u);
  u->grad = Tensor::zeros({u->padded});
  for (size_t i = 0; i < u->params.size(); ++i) {
    u->params[i]->grad = u->grad.narrow(u->offsets[i], shape_numel(u->shapes[i])).view(u->shapes[i]);
  }
}

void ZeroUnits::after_backward(int layer) {
  Unit* u = unit_of(layer);
  if (u == nullptr) return;
  if (finalize_) finalize_(layer);
  for (Parameter* p : u->params) p->grad = Tensor();
  // One reduce-scatter in flight while the next unit's gradient is computed: two unit
  // gradients alive at most, as the memory model counts them.
  for (Unit& other : units_) complete_scatter(other);
  if (reduce_dtype_ == DType::BF16) u->grad = narrowed(u->grad, DType::BF16);
  u->reduced = Tensor::empty({u->block}, reduce_dtype_);
  if (!first_scatter_) first_scatter_ = std::chrono::steady_clock::now();
  u->scattering = dp_.reduce_scatter_async(u->grad, u->reduced, ReduceOp::Sum);
  release(*u);
}

void ZeroUnits::complete_scatter(Unit& u) {
  if (!u.scattering) return;
  u.scattering->wait();
  u.scattering.reset();
  last_scatter_ = std::chrono::steady_clock::now();
  if (u.reduced.dtype() == DType::BF16) u.reduced = widened(u.reduced);
  float* acc = shard_grads_.f32() + u.shard_offset;
  const float* in = u.reduced.f32();
  for (int64_t i = 0; i < u.block; ++i) acc[i] += in[i];
  u.grad = Tensor();
  u.reduced = Tensor();
}

void ZeroUnits::begin_step() {
  shard_grads_.zero();
  first_scatter_.reset();
  last_scatter_.reset();
}

GradSyncStats ZeroUnits::stats() const {
  GradSyncStats s;
  s.exposed_ms = exposed_ms_;
  if (first_scatter_ && last_scatter_) {
    s.comm_span_ms = std::chrono::duration<double, std::milli>(*last_scatter_ - *first_scatter_).count();
  }
  s.buckets = static_cast<int>(units_.size());
  return s;
}

void ZeroUnits::finish() {
  const auto start = std::chrono::steady_clock::now();
  for (Unit& u : units_) complete_scatter(u);
  exposed_ms_ = ms_since(start);
}

void ZeroUnits::after_update() {
  if (stage_ != 2) return;
  // Every unit's gather in flight at once, then wait: the blocks are all-gathered in place.
  std::vector<std::unique_ptr<CommRequest>> requests;
  for (Unit& u : units_) requests.push_back(dp_.all_gather_async(own_block(u), u.full));
  for (auto& r : requests) r->wait();
}

void ZeroUnits::gather_all() {
  // A prefetched 16-bit gather lands first: the values are gathered again exactly.
  release_all();
  for (Unit& u : units_) start_gather(u, DType::F32);
  for (Unit& u : units_) ensure_gathered(u);
}

void ZeroUnits::release_all() {
  for (Unit& u : units_) release(u);
}

void ZeroUnits::take_shards() {
  if (stage_ != 3) return;
  for (Unit& u : units_) {
    TESSERA_CHECK(u.full.defined(), "ZeRO-3: take_shards of layer {} without gathered values", u.layer);
    own_block(u).copy_from(u.full.narrow(dp_.rank() * u.block, u.block));
  }
}

std::vector<Tensor> ZeroUnits::gather_per_param(const Tensor* shard, const std::vector<Parameter*>& params) {
  std::map<const Parameter*, Tensor> by_param;
  for (Unit& u : units_) {
    Tensor full = Tensor::zeros({u.padded});
    if (shard != nullptr) dp_.all_gather(shard->narrow(u.shard_offset, u.block), full);
    for (size_t i = 0; i < u.params.size(); ++i) {
      by_param[u.params[i]] = full.narrow(u.offsets[i], shape_numel(u.shapes[i])).view(u.shapes[i]);
    }
  }
  std::vector<Tensor> out;
  for (const Parameter* p : params) out.push_back(by_param.at(p));
  return out;
}

void ZeroUnits::scatter_from_params(const std::vector<Tensor>& full, const std::vector<Parameter*>& params,
                                    Tensor& shard) {
  TESSERA_CHECK(full.size() == params.size(), "ZeRO: {} tensors for {} parameters", full.size(), params.size());
  std::map<const Parameter*, const Tensor*> by_param;
  for (size_t i = 0; i < params.size(); ++i) by_param[params[i]] = &full[i];
  for (const Piece& piece : pieces_) {
    const Tensor& t = *by_param.at(piece.param);
    shard.narrow(piece.shard, piece.numel).copy_from(t.view({t.numel()}).narrow(piece.param_begin, piece.numel));
  }
}

GatheredParameters::GatheredParameters(ZeroUnits* units, bool keep_changes) : units_(units), keep_(keep_changes) {
  if (units_ != nullptr && units_->stage() == 3) units_->gather_all();
}

GatheredParameters::~GatheredParameters() {
  if (units_ == nullptr || units_->stage() != 3) return;
  if (keep_ && std::uncaught_exceptions() == 0) units_->take_shards();
  units_->release_all();
}

}  // namespace tessera
