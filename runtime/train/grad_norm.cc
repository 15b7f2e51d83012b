// Global-norm gradient clipping.
#include "runtime/train/grad_norm.h"

#include <cmath>

#include "kernels/grad_clip.h"
#include "runtime/device/device_memory.h"

namespace tessera {
double sum_over_groups(double sq, Communicator* dp, const TpGroup& tp, Communicator* pp, Device device) {
  if ((dp == nullptr || dp->size() == 1) && tp.size == 1 && (pp == nullptr || pp->size() == 1)) return sq;
  Tensor t = to_device(Tensor::full({1}, static_cast<float>(sq)), device);
  if (dp != nullptr && dp->size() > 1) dp->all_reduce(t, ReduceOp::Sum);
  if (tp.size > 1) tp_all_reduce(t, ReduceOp::Sum, tp);
  if (pp != nullptr && pp->size() > 1) pp->all_reduce(t, ReduceOp::Sum);
  return to_device(t, Device::cpu()).f32()[0];
}

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm, const TpGroup& tp, Communicator* pp,
                      Backend& ops) {
  std::vector<const Tensor*> counted;
  for (Parameter* p : params) {
    // A replicated parameter holds the same gradient on every tp rank: count it once.
    if (p->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) continue;
    // A tied head's copy of the embedding table holds the same (summed) gradient: count the owner's.
    if (p->tied_replica) continue;
    counted.push_back(&p->grad);
  }
  double sq = 0;
  for (const double s : ops.sum_squares(counted)) sq += s;  // in parameter order, as always
  const double norm = std::sqrt(sum_over_groups(sq, nullptr, tp, pp, ops.device()));
  const float coeff = kernels::cpu::clip_coefficient(norm, static_cast<float>(max_norm));
  if (coeff < 1.f) {
    for (Parameter* p : params) ops.scale(p->grad, coeff);
  }
  return norm;
}

}  // namespace tessera
