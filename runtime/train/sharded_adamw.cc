// ZeRO-2/3 sharded AdamW.
#include "runtime/train/sharded_adamw.h"

#include <map>

#include "runtime/train/grad_norm.h"
#include "runtime/compression/mask.h"

namespace tessera {

ShardedAdamW::ShardedAdamW(ZeroUnits& units, Communicator& dp, const OptimizerConfig& config, Backend& ops)
    : units_(units), dp_(dp), config_(config), ops_(ops) {
  m_ = Tensor::zeros({units.shard_numel()}, DType::F32, ops.device());
  v_ = Tensor::zeros({units.shard_numel()}, DType::F32, ops.device());
}

Tensor ShardedAdamW::squared_grad_norm(const TpGroup& tp, Communicator* pp) {
  Tensor& grads = units_.shard_grads();
  std::vector<Tensor> pieces;
  for (const ZeroUnits::Piece& piece : units_.pieces()) {
    // A tp-replicated parameter has the same gradient on every tp rank, and a tied table's copy
    // the same as the table on the first stage: count them once.
    if (piece.param->shard.kind == ShardSpec::Kind::Replicated && tp.rank != 0) continue;
    if (piece.param->tied_replica) continue;
    pieces.push_back(grads.narrow(piece.shard, piece.numel));
  }
  std::vector<const Tensor*> views;
  for (const Tensor& piece : pieces) views.push_back(&piece);
  return squared_norm(views, &dp_, tp, pp, ops_);
}

void ShardedAdamW::step(double lr, float grad_scale) {
  ++step_;
  for (const ZeroUnits::Piece& piece : units_.pieces()) {
    const Parameter& p = *piece.param;
    Tensor value = piece.value, g = units_.shard_grads().narrow(piece.shard, piece.numel);
    Tensor m = m_.narrow(piece.shard, piece.numel), v = v_.narrow(piece.shard, piece.numel);
    const float* mask = p.mask.defined() ? p.mask.f32() + piece.param_begin : nullptr;
    if (mask) apply_mask(g.f32(), mask, piece.numel);
    ops_.adamw_update(value, g, m, v, adamw_step(config_, lr, p.weight_decay, step_, grad_scale));
    if (mask) {
      for (const Tensor* x : {&value, &m, &v}) apply_mask(x->f32(), mask, piece.numel);
    }
  }
  units_.after_update();
}

CheckpointMoments ShardedAdamW::checkpoint_moments(const std::vector<Parameter*>& params, bool gather) {
  CheckpointMoments out;
  if (gather) {
    const std::vector<Tensor> m = units_.gather_per_param(&m_, params), v = units_.gather_per_param(&v_, params);
    for (size_t i = 0; i < params.size(); ++i) out.per_param.push_back({m[i], v[i]});
    return out;
  }
  // Full per-parameter buffers for the loader (a stage-3 parameter's value may be freed, so
  // the units give the shapes).
  const std::vector<Tensor> m = units_.gather_per_param(nullptr, params), v = units_.gather_per_param(nullptr, params);
  for (size_t i = 0; i < params.size(); ++i) out.per_param.push_back({m[i], v[i]});
  load_params_ = params;
  return out;
}

std::optional<std::vector<OwnedRange>> ShardedAdamW::owned_ranges(const std::vector<Parameter*>& params) {
  std::map<const Parameter*, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) index[params[i]] = i;
  std::vector<OwnedRange> out;
  for (const ZeroUnits::Piece& piece : units_.pieces()) {
    const auto it = index.find(piece.param);
    TESSERA_CHECK(it != index.end(), "ZeRO: parameter {} of the units is not one of the {} saved", piece.param->name,
                  params.size());
    out.push_back({it->second, piece.param_begin, piece.value, m_.narrow(piece.shard, piece.numel),
                   v_.narrow(piece.shard, piece.numel)});
  }
  return out;
}

void ShardedAdamW::load_moments(const CheckpointMoments& loaded) {
  TESSERA_CHECK(loaded.per_param.size() == load_params_.size(),
                "ShardedAdamW::load_moments: not the buffers of checkpoint_moments");
  std::vector<Tensor> m, v;
  for (const OptimizerMoments& mv : loaded.per_param) {
    m.push_back(mv.exp_avg);
    v.push_back(mv.exp_avg_sq);
  }
  units_.scatter_from_params(m, load_params_, m_);
  units_.scatter_from_params(v, load_params_, v_);
}

}  // namespace tessera
