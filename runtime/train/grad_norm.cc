// Global-norm gradient clipping.
#include "runtime/train/grad_norm.h"

#include <cmath>

#include "kernels/grad_clip.h"
#include "runtime/device/device_memory.h"

namespace tessera {
Tensor squared_norm(const std::vector<const Tensor*>& counted, Communicator* dp, const TpGroup& tp, Communicator* pp,
                    Backend& ops) {
  Tensor t = Tensor::empty({1}, DType::F32, ops.device());
  ops.sum_squares_total(counted, t);  // in parameter order, as always
  if (dp != nullptr && dp->size() > 1) dp->all_reduce(t, ReduceOp::Sum);
  if (tp.size > 1) tp_all_reduce(t, ReduceOp::Sum, tp);
  if (pp != nullptr && pp->size() > 1) pp->all_reduce(t, ReduceOp::Sum);
  return t;
}

std::vector<const Tensor*> counted_gradients(const std::vector<Parameter*>& params, const TpGroup& tp) {
  std::vector<const Tensor*> counted;
  for (Parameter* p : params) {
    // A replicated parameter holds the same gradient on every tp rank: count it once.
    if (p->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) continue;
    // A tied head's copy of the embedding table holds the same (summed) gradient: count the owner's.
    if (p->tied_replica) continue;
    counted.push_back(&p->grad);
  }
  return counted;
}

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm, const TpGroup& tp, Communicator* pp,
                      Backend& ops) {
  const Tensor sq = squared_norm(counted_gradients(params, tp), nullptr, tp, pp, ops);
  const double norm = std::sqrt(static_cast<double>(to_device(sq, Device::cpu()).f32()[0]));
  const float coeff = kernels::cpu::clip_coefficient(norm, static_cast<float>(max_norm));
  if (coeff < 1.f) {
    for (Parameter* p : params) ops.scale(p->grad, coeff);
  }
  return norm;
}

}  // namespace tessera
