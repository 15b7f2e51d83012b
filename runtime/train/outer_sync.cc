// Local SGD / DiLoCo / streaming DiLoCo outer synchronisation over the dp group.
#include "runtime/train/outer_sync.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "runtime/bf16.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

OuterSyncConfig outer_sync_config(const ParallelConfig& p) {
  OuterSyncConfig c;
  c.diloco = p.data_parallel_sync == "diloco";
  c.interval = p.sync_interval;
  c.fragments = p.outer_fragments;
  c.delay = p.outer_delay;
  c.bf16 = p.outer_dtype == "bf16";
  c.sharded = p.zero_stage >= 1;
  // Local SGD is DiLoCo with an outer step of lr 1 and no momentum (used with bf16 deltas).
  c.step = c.diloco ? OuterStepConfig{static_cast<float>(p.outer_lr), static_cast<float>(p.outer_momentum),
                                      p.outer_nesterov}
                    : OuterStepConfig{1.f, 0.f, false};
  return c;
}

std::vector<int> outer_fragment_of_layers(const std::vector<int>& graph_layer, int num_layers, int fragments) {
  std::vector<int> out;
  for (int g : graph_layer) {
    const int64_t block = std::clamp(g - 1, 0, num_layers - 1);
    out.push_back(static_cast<int>(block * fragments / num_layers));
  }
  return out;
}

double ring_all_reduce_bytes(double bytes, int ranks) {
  return ranks <= 1 ? 0.0 : 2.0 * (ranks - 1) / ranks * bytes;
}

OuterSync::OuterSync(FlatParameters& flat, Communicator* dp, const OuterSyncConfig& config,
                     const std::vector<int>& fragment_of_layer)
    : flat_(flat), dp_(dp), config_(config), fragments_(config.fragments) {
  TESSERA_CHECK(config_.interval >= 1 && config_.fragments >= 1 && config_.fragments <= config_.interval &&
                    config_.delay >= 0 && config_.delay < config_.interval,
                "outer sync: needs 1 <= fragments <= sync_interval and 0 <= delay < sync_interval");
  TESSERA_CHECK(!config_.sharded || (config_.delay == 0 && !config_.bf16),
                "outer sync: the sharded outer state needs outer_delay 0 and fp32 deltas");
  for (const FlatSegment& s : flat_.segments()) {
    Fragment& f = fragments_.at(fragment_of_layer.at(s.layer));
    if (!f.ranges.empty() && f.ranges.back().offset + f.ranges.back().numel == s.offset) {
      f.ranges.back().numel += s.numel;
    } else {
      f.ranges.push_back({s.offset, s.numel});
    }
    f.numel += s.numel;
  }
  const int n = dp_size();
  for (size_t i = 0; i < fragments_.size(); ++i) {
    Fragment& f = fragments_[i];
    f.phase = static_cast<int>((static_cast<int64_t>(i + 1) * config_.interval / config_.fragments) % config_.interval);
    f.padded = (f.numel + n - 1) / n * n;
    const int64_t state = config_.sharded ? f.padded / n : f.numel;
    if (uses_anchor()) f.anchor = Tensor::zeros({state});
    if (config_.step.momentum != 0.f) f.momentum = Tensor::zeros({state});
    f.send = config_.bf16 ? Tensor::zeros({f.numel}, DType::BF16)
                          : Tensor::zeros({config_.sharded ? f.padded : f.numel});
  }
  reset_anchor();
}

OuterSync::~OuterSync() {
  // A reduction still in flight must finish before its buffer goes away; errors here (a dead
  // peer at shutdown) are already being reported by whoever unwinds.
  for (Fragment& f : fragments_) {
    try {
      if (f.request) f.request->wait();
    } catch (...) {
    }
  }
}

int64_t OuterSync::shard_begin(const Fragment& f) const {
  return config_.sharded && dp_ != nullptr ? f.padded / dp_size() * dp_->rank() : 0;
}

// The outer state stays on the host: a GPU's parameters are copied over at each sync (every H
// steps), as DiLoCo implementations keep the outer optimizer off the accelerator. The fragment's
// span comes over in one copy (one host wait), gaps between its ranges included.
void OuterSync::gather_params(const Fragment& f, float* out) const {
  if (f.ranges.empty()) return;
  const int64_t begin = f.ranges.front().offset, end = f.ranges.back().offset + f.ranges.back().numel;
  const Tensor span = to_device(flat_.values().narrow(begin, end - begin), Device::cpu());
  for (const Range& r : f.ranges) {
    std::memcpy(out, span.f32() + (r.offset - begin), sizeof(float) * r.numel);
    out += r.numel;
  }
}

void OuterSync::scatter_params(const Fragment& f, const float* in) {
  Tensor values = flat_.values();
  for (const Range& r : f.ranges) {
    Tensor host = Tensor::empty({r.numel});
    std::memcpy(host.f32(), in, sizeof(float) * r.numel);
    Tensor dst = values.narrow(r.offset, r.numel);
    copy_tensor(dst, host);
    in += r.numel;
  }
}

void OuterSync::reset_anchor() {
  for (Fragment& f : fragments_) {
    TESSERA_CHECK(!f.request, "outer sync: reset_anchor with a reduction in flight");
    f.launched = -1;
    if (f.momentum.defined()) f.momentum.fill(0.f);
    if (!f.anchor.defined() || f.numel == 0) continue;
    Tensor full = Tensor::zeros({f.padded});
    gather_params(f, full.f32());
    f.anchor.copy_from(full.narrow(shard_begin(f), f.anchor.numel()));
  }
}

void OuterSync::after_inner_step(int64_t step) {
  stats_ = OuterSyncStats{};
  for (Fragment& f : fragments_) {
    if (f.numel == 0 || f.launched >= 0 || step % config_.interval != f.phase) continue;
    if (config_.sharded) {
      apply_sharded(f, step);
    } else {
      launch(f, step);
    }
  }
  for (Fragment& f : fragments_) {
    if (f.launched >= 0 && step == f.launched + config_.delay) apply(f, step);
  }
}

void OuterSync::launch(Fragment& f, int64_t step) {
  // DiLoCo (and bf16 local SGD) send the change since the anchor; fp32 local SGD the
  // parameters themselves, so that one replica's average is exactly its own parameters.
  Tensor values = config_.bf16 ? Tensor::empty({f.numel}) : f.send;
  float* x = values.f32();
  gather_params(f, x);
  if (uses_anchor()) {
    const float* a = f.anchor.f32();
    for (int64_t i = 0; i < f.numel; ++i) x[i] = a[i] - x[i];
  }
  if (config_.bf16) f32_to_bf16(x, f.send.data<uint16_t>(), f.numel);
  if (dp_size() > 1) {
    f.request = dp_->all_reduce_async(f.send, ReduceOp::Avg);
    stats_.bytes += ring_all_reduce_bytes(static_cast<double>(f.send.nbytes()), dp_size());
  }
  f.launched = step;
}

int OuterSync::progress() {
  int incomplete = 0;
  for (Fragment& f : fragments_) {
    if (f.request && !f.request->test()) ++incomplete;
  }
  return incomplete;
}

void OuterSync::wait(Fragment& f) {
  if (!f.request) return;
  const auto start = std::chrono::steady_clock::now();
  f.request->wait();
  f.request.reset();
  stats_.wait_ms += ms_since(start);
}

void OuterSync::apply(Fragment& f, int64_t step) {
  wait(f);
  Tensor mean = f.send;
  if (config_.bf16) {
    mean = Tensor::empty({f.numel});
    bf16_to_f32(f.send.data<uint16_t>(), mean.f32(), f.numel);
  }
  if (uses_anchor()) {
    outer_sgd_update(f.anchor.f32(), mean.f32(), f.momentum.defined() ? f.momentum.f32() : nullptr, f.numel,
                     config_.step);
    scatter_params(f, f.anchor.f32());
  } else {
    scatter_params(f, mean.f32());
  }
  f.launched = -1;
  f.applied = step;
}

void OuterSync::apply_sharded(Fragment& f, int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  float* full = f.send.f32();
  std::fill(full + f.numel, full + f.padded, 0.f);
  gather_params(f, full);
  Tensor shard = Tensor::empty({f.padded / dp_size()});
  if (dp_size() > 1) {
    dp_->reduce_scatter(f.send, shard, ReduceOp::Avg);
  } else {
    shard.copy_from(f.send);
  }
  if (uses_anchor()) {
    // The mean of the replicas' parameters on this shard becomes the outer gradient.
    float* d = shard.f32();
    const float* a = f.anchor.f32();
    for (int64_t i = 0; i < shard.numel(); ++i) d[i] = a[i] - d[i];
    outer_sgd_update(f.anchor.f32(), d, f.momentum.defined() ? f.momentum.f32() : nullptr, shard.numel(),
                     config_.step);
    shard.copy_from(f.anchor);
  }
  if (dp_size() > 1) {
    dp_->all_gather(shard, f.send);
  } else {
    f.send.copy_from(shard);
  }
  scatter_params(f, full);
  stats_.bytes += ring_all_reduce_bytes(static_cast<double>(f.send.nbytes()), dp_size());
  stats_.wait_ms += ms_since(start);
  f.applied = step;
}

bool OuterSync::replicas_identical(int64_t step) const {
  if (step == 0) return true;
  if (config_.fragments > 1) return false;
  for (const Fragment& f : fragments_) {
    if (f.numel > 0 && (f.launched >= 0 || f.applied != step)) return false;
  }
  return true;
}

int64_t OuterSync::state_bytes() const {
  int64_t n = 0;
  for (const Fragment& f : fragments_) {
    for (const Tensor* t : {&f.anchor, &f.momentum, &f.send}) n += t->defined() ? static_cast<int64_t>(t->nbytes()) : 0;
  }
  return n;
}

}  // namespace tessera
