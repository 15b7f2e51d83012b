// ZeRO-1 sharded AdamW.
#include "runtime/train/zero_adamw.h"

#include <algorithm>
#include <map>

#include "runtime/train/grad_norm.h"
#include "runtime/compression/mask.h"
#include "runtime/device/device_memory.h"

namespace tessera {

ZeroAdamW::ZeroAdamW(FlatParameters& flat, GradientSync& sync, Communicator& dp, const OptimizerConfig& config,
                     Backend& ops)
    : flat_(flat), sync_(sync), dp_(dp), config_(config), ops_(ops) {
  const int64_t shard = flat.numel() / dp.size();
  lo_ = shard * dp.rank();
  hi_ = lo_ + shard;
  // On the parameters' device (a GPU's moments stay there).
  m_ = Tensor::zeros({shard}, DType::F32, flat.values().device());
  v_ = Tensor::zeros({shard}, DType::F32, flat.values().device());
}

template <typename F>
void ZeroAdamW::for_each_piece(F f) const {
  for (const FlatSegment& s : flat_.segments()) {
    const int64_t b = std::max(lo_, s.offset), e = std::min(hi_, s.offset + s.numel);
    if (b < e) f(s, b, e);
  }
}

Tensor ZeroAdamW::squared_grad_norm(const TpGroup& tp, Communicator* pp) {
  Tensor& shard_grads = sync_.shard_grads();
  std::vector<Tensor> pieces;
  for_each_piece([&](const FlatSegment& s, int64_t b, int64_t e) {
    // A tp-replicated parameter has the same gradient on every tp rank: count it once.
    if (s.param->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) return;
    // A tied head's copy of the embedding table holds the first stage's (summed) gradient.
    if (s.param->tied_replica) return;
    pieces.push_back(shard_grads.narrow(b - lo_, e - b));
  });
  std::vector<const Tensor*> views;
  for (const Tensor& piece : pieces) views.push_back(&piece);
  return squared_norm(views, &dp_, tp, pp, ops_);
}

CheckpointMoments ZeroAdamW::checkpoint_moments(const std::vector<Parameter*>& params, bool gather) {
  Tensor exp_avg, exp_avg_sq;
  if (gather) {
    exp_avg = Tensor::empty({flat_.numel()}, DType::F32, m_.device());
    exp_avg_sq = Tensor::empty({flat_.numel()}, DType::F32, m_.device());
    dp_.all_gather(m_, exp_avg);
    dp_.all_gather(v_, exp_avg_sq);
  } else {
    // Host buffers for a load (checkpoints are read on the host); load_moments moves them.
    exp_avg = Tensor::zeros({flat_.numel()});
    exp_avg_sq = Tensor::zeros({flat_.numel()});
  }
  std::map<const Parameter*, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) index[params[i]] = i;
  CheckpointMoments out;
  out.per_param.resize(params.size());
  for (const FlatSegment& seg : flat_.segments()) {
    const Shape& shape = seg.param->value.shape();
    out.per_param[index.at(seg.param)] = {exp_avg.narrow(seg.offset, seg.numel).view(shape),
                                          exp_avg_sq.narrow(seg.offset, seg.numel).view(shape)};
  }
  out.storage = {exp_avg, exp_avg_sq};
  return out;
}

void ZeroAdamW::load_moments(const CheckpointMoments& loaded) {
  TESSERA_CHECK(loaded.storage.size() == 2, "ZeroAdamW::load_moments: not the buffers of checkpoint_moments");
  copy_tensor(m_, loaded.storage[0].narrow(lo_, hi_ - lo_));
  copy_tensor(v_, loaded.storage[1].narrow(lo_, hi_ - lo_));
}

std::optional<std::vector<OwnedRange>> ZeroAdamW::owned_ranges(const std::vector<Parameter*>& params) {
  std::map<const Parameter*, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) index[params[i]] = i;
  std::vector<OwnedRange> out;
  for_each_piece([&](const FlatSegment& s, int64_t b, int64_t e) {
    out.push_back({index.at(s.param), b - s.offset, flat_.values().narrow(b, e - b), m_.narrow(b - lo_, e - b),
                   v_.narrow(b - lo_, e - b)});
  });
  return out;
}

void ZeroAdamW::step(double lr, float grad_scale) {
  const Tensor& shard_grads = sync_.shard_grads();
  ++step_;
  for_each_piece([&](const FlatSegment& s, int64_t b, int64_t e) {
    const int64_t i = b - lo_;
    Tensor value = flat_.values().narrow(b, e - b), grad = shard_grads.narrow(i, e - b);
    Tensor m = m_.narrow(i, e - b), v = v_.narrow(i, e - b);
    // The piece [b, e) of the parameter starts at element b - s.offset of its mask.
    const float* mask = s.param->mask.defined() ? s.param->mask.f32() + (b - s.offset) : nullptr;
    if (mask) apply_mask(grad.f32(), mask, e - b);
    ops_.adamw_update(value, grad, m, v, adamw_step(config_, lr, s.param->weight_decay, step_, grad_scale));
    if (mask) {
      for (const Tensor* x : {&value, &m, &v}) apply_mask(x->f32(), mask, e - b);
    }
  });
  Tensor own = flat_.values().narrow(lo_, hi_ - lo_);
  dp_.all_gather(own, flat_.values());
}

}  // namespace tessera
