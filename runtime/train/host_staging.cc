// Host twins of device parameters and moments for checkpoint I/O.
#include "runtime/train/host_staging.h"

#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

Tensor host_twin(const Tensor& t, bool fill) {
  if (!t.defined()) return t;
  return fill ? to_device(t, Device::cpu()) : Tensor::empty(t.shape(), t.dtype());
}

bool on_device(const CheckpointState& state) {
  for (const Parameter* p : state.params) {
    if (p->value.defined() && !p->value.device().is_cpu()) return true;
  }
  // ZeRO-3 at rest holds no values, only its ranges' blocks.
  if (state.owned) {
    for (const OwnedRange& r : *state.owned) {
      if (!r.value.device().is_cpu()) return true;
    }
  }
  return false;
}

}  // namespace

HostStaging::HostStaging(CheckpointState& state, bool fill) {
  if (!on_device(state)) return;
  device_params_ = state.params;
  device_moments_ = state.moments;
  params_.reserve(state.params.size());
  for (Parameter*& p : state.params) {
    // Every field but the tensors is the device parameter's (name, shapes, sharding, flags);
    // the value is a host twin, and a device run has no masks or GEMM copies to stage.
    Parameter twin = *p;
    twin.value = host_twin(p->value, fill);
    twin.grad = twin.mask = twin.compute_copy = Tensor();
    twin.compute_copy_version = 0;
    params_.push_back(std::move(twin));
    p = &params_.back();
  }
  moments_.reserve(state.moments.size());
  for (OptimizerMoments*& m : state.moments) {
    moments_.push_back({host_twin(m->exp_avg, fill), host_twin(m->exp_avg_sq, fill)});
    m = &moments_.back();
  }
  // A dp-sharded save's ranges (ZeRO-1) are views of the device buffers: their host copies.
  if (state.owned) {
    TESSERA_CHECK(fill, "HostStaging: dp-sharded ranges are for saves only");
    for (OwnedRange& r : *state.owned) {
      r.value = host_twin(r.value, true);
      r.exp_avg = host_twin(r.exp_avg, true);
      r.exp_avg_sq = host_twin(r.exp_avg_sq, true);
    }
  }
}

void HostStaging::write_back() {
  for (size_t i = 0; i < params_.size(); ++i) {
    TESSERA_REQUIRE(!params_[i].mask.defined(),
                    "{}: the checkpoint holds a pruning mask, and train.device = cuda does not run pruned weights yet",
                    params_[i].name);
    copy_tensor(device_params_[i]->value, params_[i].value);
  }
  for (size_t i = 0; i < moments_.size(); ++i) {
    copy_tensor(device_moments_[i]->exp_avg, moments_[i].exp_avg);
    copy_tensor(device_moments_[i]->exp_avg_sq, moments_[i].exp_avg_sq);
  }
}

}  // namespace tessera
