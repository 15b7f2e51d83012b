// ZeRO-2/3 units: sharded storage, gathers before use, reduce-scatters after backward.
#include "runtime/train/zero_units.h"

#include <algorithm>
#include <exception>
#include <map>

#include "core/error.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Tensor ZeroUnits::make(int64_t numel, DType dtype, bool zeroed) const {
  return zeroed ? Tensor::zeros({numel}, dtype, ops_.device()) : Tensor::empty({numel}, dtype, ops_.device());
}

// fp32 <-> the 16-bit formats, for what the collectives move; on the units' device.
Tensor ZeroUnits::cast_to(const Tensor& t, DType dtype) {
  Tensor out = make(t.numel(), dtype, false);
  ops_.cast(t, out);
  return out;
}

ZeroUnits::ZeroUnits(Communicator& dp, Backend& ops, int stage, int prefetch, DType gather_dtype, DType reduce_dtype,
                     std::function<void(int)> finalize)
    : dp_(dp),
      ops_(ops),
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
}

void ZeroUnits::adopt(int chunk, Layer& layer) {
  TESSERA_CHECK(!sealed_, "ZeRO: layer {} adopted after seal()", layer.name());
  const int index = static_cast<int>(layer_units_.size());
  std::vector<int> used;
  std::vector<Parameter*> grouped;
  for (Parameter* p : layer.parameters()) {
    if (p->tied || p->tied_replica) {
      used.push_back(add_unit(index, {p}));  // tied: a unit of its own (see the header)
    } else {
      grouped.push_back(p);
    }
  }
  if (!grouped.empty()) used.insert(used.begin(), add_unit(index, std::move(grouped)));
  for (const Parameter* p : layer.borrowed_parameters()) {
    const auto owner = std::find_if(units_.begin(), units_.end(),
                                    [&](const Unit& u) { return u.params.size() == 1 && u.params[0] == p; });
    TESSERA_CHECK(owner != units_.end(), "ZeRO: layer {} uses {}, which no earlier layer of this rank owns",
                  layer.name(), p->name);
    owner->last_backward = std::min(owner->last_backward, index);
    used.push_back(static_cast<int>(owner - units_.begin()));
  }
  layer_units_.push_back(std::move(used));
  layer_chunk_.push_back(chunk);
}

int ZeroUnits::add_unit(int layer, std::vector<Parameter*> params) {
  const int n = dp_.size();
  Unit u;
  u.layer = u.last_backward = layer;
  int64_t numel = 0;
  for (Parameter* p : params) {
    u.offsets.push_back(numel);
    u.shapes.push_back(p->value.shape());
    numel += p->value.numel();
  }
  u.params = std::move(params);
  u.padded = (numel + n - 1) / n * n;
  u.block = u.padded / n;
  u.shard_offset = shard_total_;
  shard_total_ += u.block;
  // The layer's own tensors hold the initial values: copied into the unit, after which the
  // layer's allocations (values and gradients) go with their last views.
  u.full = make(u.padded, DType::F32, true);
  for (size_t i = 0; i < u.params.size(); ++i) {
    Parameter* p = u.params[i];
    Tensor place = u.full.narrow(u.offsets[i], p->value.numel()).view(u.shapes[i]);
    copy_tensor(place, p->value);  // built on the host: onto the device here on a GPU
    p->grad = Tensor();
  }
  bind_values(u);
  if (stage_ == 3) {
    u.rest = u.full.narrow(dp_.rank() * u.block, u.block).clone();
    release(u);
  }
  units_.push_back(std::move(u));
  return static_cast<int>(units_.size()) - 1;
}

void ZeroUnits::seal() {
  TESSERA_CHECK(!sealed_, "ZeRO: seal() twice");
  sealed_ = true;
  shard_grads_ = make(shard_total_, DType::F32, true);
  // Each parameter's overlap with this rank's block [lo, hi) of its unit.
  for (Unit& u : units_) {
    const int64_t lo = dp_.rank() * u.block, hi = lo + u.block;
    const Tensor values = own_block(u);
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

const std::vector<int>& ZeroUnits::units_of(int layer) const {
  TESSERA_CHECK(layer >= 0 && layer < static_cast<int>(layer_units_.size()), "ZeRO: layer {} of {}", layer,
                layer_units_.size());
  return layer_units_[layer];
}

Tensor ZeroUnits::block_grad_of(const Parameter* p) {
  for (const Unit& u : units_) {
    if (u.params.size() == 1 && u.params[0] == p) return shard_grads_.narrow(u.shard_offset, u.block);
  }
  TESSERA_CHECK(false, "ZeRO: {} is not a unit of its own", p->name);
  return {};
}

Tensor ZeroUnits::own_block(Unit& u) {
  return stage_ == 3 ? u.rest : u.full.narrow(dp_.rank() * u.block, u.block);
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
    u.low = make(u.padded, dtype, false);
    Tensor mine = u.low.narrow(dp_.rank() * u.block, u.block);
    ops_.cast(own_block(u), mine);
    u.gathering = dp_.all_gather_async(mine, u.low);
    return;
  }
  u.full = make(u.padded, DType::F32, false);
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
    u.full = cast_to(u.low, DType::F32);
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
  int started = 0;
  for (int l = layer + step; started < prefetch_ && l >= 0 && l < static_cast<int>(layer_units_.size()); l += step) {
    if (layer_chunk_[l] != layer_chunk_[layer]) break;
    if (layer_units_[l].empty()) continue;
    for (int u : layer_units_[l]) start_gather(units_[u], gather_dtype_);
    ++started;
  }
}

void ZeroUnits::before_forward(int layer) {
  if (stage_ != 3) return;
  for (int u : units_of(layer)) ensure_gathered(units_[u]);
  prefetch(layer, 1);
}

void ZeroUnits::after_forward(int layer) {
  for (int u : units_of(layer)) release(units_[u]);
}

void ZeroUnits::before_backward(int layer) {
  const std::vector<int>& used = units_of(layer);
  if (used.empty()) return;
  for (int i : used) {
    Unit& u = units_[i];
    if (stage_ == 3) ensure_gathered(u);
    if (!u.accumulating) bind_grads(u);
  }
  if (stage_ == 3) prefetch(layer, -1);
}

void ZeroUnits::after_backward(int layer) {
  const std::vector<int>& used = units_of(layer);
  if (used.empty()) return;
  if (finalize_) finalize_(layer);
  for (int i : used) {
    Unit& u = units_[i];
    if (layer == u.last_backward) start_scatter(u);
    release(u);
  }
}

void ZeroUnits::bind_grads(Unit& u) {
  // The previous microbatch's reduce-scatter of this unit must land before its buffers go.
  complete_scatter(u);
  u.grad = make(u.padded, DType::F32, true);
  for (size_t i = 0; i < u.params.size(); ++i) {
    u.params[i]->grad = u.grad.narrow(u.offsets[i], shape_numel(u.shapes[i])).view(u.shapes[i]);
    u.params[i]->grad_zero = !u.params[i]->tied;
  }
  u.accumulating = true;
}

void ZeroUnits::start_scatter(Unit& u) {
  for (Parameter* p : u.params) p->grad = Tensor();
  u.accumulating = false;
  // One reduce-scatter in flight while the next unit's gradient is computed: two unit
  // gradients alive at most (and a tied unit's, accumulating), as the memory model counts them.
  for (Unit& other : units_) complete_scatter(other);
  if (reduce_dtype_ == DType::BF16) u.grad = cast_to(u.grad, DType::BF16);
  u.reduced = make(u.block, reduce_dtype_, false);
  if (!first_scatter_) first_scatter_ = std::chrono::steady_clock::now();
  u.scattering = dp_.reduce_scatter_async(u.grad, u.reduced, ReduceOp::Sum);
}

void ZeroUnits::complete_scatter(Unit& u) {
  if (!u.scattering) return;
  u.scattering->wait();
  u.scattering.reset();
  last_scatter_ = std::chrono::steady_clock::now();
  if (u.reduced.dtype() == DType::BF16) u.reduced = cast_to(u.reduced, DType::F32);
  Tensor acc = shard_grads_.narrow(u.shard_offset, u.block);
  ops_.accumulate(acc, u.reduced);
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
    Tensor block = own_block(u);
    copy_tensor(block, u.full.narrow(dp_.rank() * u.block, u.block));
  }
}

void ZeroUnits::materialize(int unit) {
  Unit& u = units_.at(unit);
  if (stage_ != 3) return;
  TESSERA_CHECK(!u.full.defined() && !u.gathering, "ZeRO-3: layer {}'s unit is in use", u.layer);
  u.full = make(u.padded, DType::F32, true);
  bind_values(u);
}

void ZeroUnits::keep_loaded(int unit) {
  Unit& u = units_.at(unit);
  if (stage_ != 3) return;
  Tensor block = own_block(u);
  copy_tensor(block, u.full.narrow(dp_.rank() * u.block, u.block));
  release(u);
}

std::vector<Tensor> ZeroUnits::gather_per_param(const Tensor* shard, const std::vector<Parameter*>& params) {
  std::vector<Tensor> out;
  if (shard == nullptr) {
    for (const Parameter* p : params) {
      const auto u = std::find_if(units_.begin(), units_.end(), [&](const Unit& unit) {
        return std::find(unit.params.begin(), unit.params.end(), p) != unit.params.end();
      });
      TESSERA_CHECK(u != units_.end(), "ZeRO: {} is in no unit", p->name);
      const size_t i = std::find(u->params.begin(), u->params.end(), p) - u->params.begin();
      out.push_back(Tensor::zeros(u->shapes[i]));
    }
    return out;
  }
  std::map<const Parameter*, Tensor> by_param;
  for (Unit& u : units_) {
    Tensor full = make(u.padded, DType::F32, true);
    dp_.all_gather(shard->narrow(u.shard_offset, u.block), full);
    for (size_t i = 0; i < u.params.size(); ++i) {
      by_param[u.params[i]] = full.narrow(u.offsets[i], shape_numel(u.shapes[i])).view(u.shapes[i]);
    }
  }
  for (const Parameter* p : params) out.push_back(by_param.at(p));
  return out;
}

void ZeroUnits::scatter_from_params(const std::vector<Tensor>& full, const std::vector<Parameter*>& params,
                                    Tensor& shard) {
  TESSERA_CHECK(full.size() == params.size(), "ZeRO: {} tensors for {} parameters", full.size(), params.size());
  std::map<const Parameter*, const Tensor*> by_param;
  for (size_t i = 0; i < params.size(); ++i) by_param[params[i]] = &full[i];
  for (const Piece& piece : pieces_) {
    const auto it = by_param.find(piece.param);
    if (it == by_param.end()) continue;  // not in the subset given
    const Tensor& t = *it->second;
    Tensor dst = shard.narrow(piece.shard, piece.numel);
    copy_tensor(dst, t.view({t.numel()}).narrow(piece.param_begin, piece.numel));
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
