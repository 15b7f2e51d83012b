// Global-norm gradient clipping.
#include "runtime/train/grad_norm.h"

#include <cmath>

#include "kernels/grad_clip.h"
#include "runtime/device/device_memory.h"

namespace tessera {
namespace {

// sq summed over a group's ranks, in an fp32 tensor on the gradients' device (the group's
// communicator moves tensors of that device).
double summed_over(double sq, Communicator& comm, Device device, const TpGroup* tp) {
  Tensor t = to_device(Tensor::full({1}, static_cast<float>(sq)), device);
  if (tp != nullptr) {
    tp_all_reduce(t, ReduceOp::Sum, *tp);
  } else {
    comm.all_reduce(t, ReduceOp::Sum);
  }
  return to_device(t, Device::cpu()).f32()[0];
}

}  // namespace

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
  if (tp.size > 1) sq = summed_over(sq, *tp.comm, ops.device(), &tp);
  if (pp != nullptr && pp->size() > 1) sq = summed_over(sq, *pp, ops.device(), nullptr);
  const double norm = std::sqrt(sq);
  const float coeff = kernels::cpu::clip_coefficient(norm, static_cast<float>(max_norm));
  if (coeff < 1.f) {
    for (Parameter* p : params) ops.scale(p->grad, coeff);
  }
  return norm;
}

}  // namespace tessera
