// Global-norm gradient clipping.
#include "runtime/train/grad_norm.h"

#include <cmath>

#include "kernels/grad_clip.h"
#include "kernels/residual.h"

namespace tessera {

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm, const TpGroup& tp,
                      Communicator* pp) {
  double sq = 0;
  for (Parameter* p : params) {
    // A replicated parameter holds the same gradient on every tp rank: count it once.
    if (p->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) continue;
    // A tied head's copy of the embedding table holds the same (summed) gradient: count the owner's.
    if (p->tied_replica) continue;
    sq += kernels::cpu::sum_squares(p->grad.f32(), p->grad.numel());
  }
  if (tp.size > 1) {
    Tensor t = Tensor::full({1}, static_cast<float>(sq));
    tp_all_reduce(t, ReduceOp::Sum, tp);
    sq = t.f32()[0];
  }
  if (pp != nullptr && pp->size() > 1) {
    Tensor t = Tensor::full({1}, static_cast<float>(sq));
    pp->all_reduce(t, ReduceOp::Sum);
    sq = t.f32()[0];
  }
  const double norm = std::sqrt(sq);
  const float coeff = kernels::cpu::clip_coefficient(norm, static_cast<float>(max_norm));
  if (coeff < 1.f) {
    for (Parameter* p : params) kernels::cpu::scale(p->grad.f32(), coeff, p->grad.numel());
  }
  return norm;
}

}  // namespace tessera
