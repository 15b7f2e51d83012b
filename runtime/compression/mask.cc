// Pruning masks during training.
#include "runtime/compression/mask.h"

namespace tessera {

void apply_mask(float* x, const float* mask, int64_t n) {
  // A multiply, not a select: 0 * w is +-0, and a kept weight is unchanged bit for bit.
  for (int64_t i = 0; i < n; ++i) x[i] *= mask[i];
}

void mask_gradients(const std::vector<Parameter*>& params) {
  for (Parameter* p : params) {
    if (!p->mask.defined()) continue;
    TESSERA_CHECK(p->mask.shape() == p->grad.shape(), "mask of {} has shape {}, its gradient {}", p->name,
                  shape_string(p->mask.shape()), shape_string(p->grad.shape()));
    apply_mask(p->grad.f32(), p->mask.f32(), p->grad.numel());
  }
}

SparsityStats sparsity_stats(const std::vector<Parameter*>& params) {
  SparsityStats s;
  for (const Parameter* p : params) {
    if (!p->mask.defined()) continue;
    ++s.masked_params;
    const float* m = p->mask.f32();
    // A ZeRO-3 parameter's value is sharded away between uses: its mask still counts.
    const float* v = p->value.defined() ? p->value.f32() : nullptr;
    for (int64_t i = 0; i < p->mask.numel(); ++i) {
      ++s.elements;
      if (m[i] == 0.f) {
        ++s.pruned;
        if (v != nullptr && v[i] != 0.f) ++s.nonzero_pruned;
      }
    }
  }
  return s;
}

}  // namespace tessera
