// The shared GPT forward pieces on the CPU kernels.
#include "runtime/inference/gpt_math.h"

#include "kernels/bias.h"
#include "kernels/embedding.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"

namespace tessera::gpt_math {

namespace k = kernels::cpu;

namespace {

Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t rows = x.dim(0), C = x.dim(1);
  Tensor out = Tensor::empty({rows, C});
  Tensor mean = Tensor::empty({rows}), rstd = Tensor::empty({rows});
  k::layernorm_forward(out.f32(), mean.f32(), rstd.f32(), x.f32(), weight.f32(), bias.f32(), rows, C);
  return out;
}

// out [rows, out_features] = x W^T, reduced over the tp ranks' partial products, then the bias
// added as the training block does: after the reduction.
Tensor projection(const Tensor& x, const Tensor& weight, const Tensor& bias, const TpGroup& tp) {
  const int64_t rows = x.dim(0), in = weight.dim(1), out_features = weight.dim(0);
  Tensor partial = Tensor::empty({rows, out_features});
  k::linear_forward(partial.f32(), x.f32(), weight.f32(), nullptr, rows, in, out_features);
  Tensor out = reduce_from_tp_forward(partial, tp);
  k::bias_forward(out.f32(), bias.f32(), rows, out_features);
  return out;
}

}  // namespace

Tensor embed(const InferenceModel& model, const int32_t* tokens, const int64_t* positions, int64_t rows) {
  const int64_t C = model.hidden_size();
  Tensor x = Tensor::empty({rows, C});
  k::token_embedding_forward(x.f32(), tokens, model.wte().f32(), rows, C, 0, model.vocab_size());
  const float* wpe = model.wpe().f32();
  for (int64_t r = 0; r < rows; ++r) {
    k::position_embedding_forward(x.f32() + r * C, wpe + positions[r] * C, 1, 1, C);
  }
  return x;
}

Tensor attention_inputs(const BlockWeights& w, const Tensor& x) {
  const int64_t rows = x.dim(0), C = x.dim(1), width = w.attn_w.dim(0);
  const Tensor h = layernorm(x, w.ln1_w, w.ln1_b);
  Tensor qkv = Tensor::empty({rows, width});
  k::linear_forward(qkv.f32(), h.f32(), w.attn_w.f32(), w.attn_b.f32(), rows, C, width);
  return qkv;
}

void finish_block(const BlockWeights& w, Tensor& x, const Tensor& att, const TpGroup& tp) {
  const int64_t rows = x.dim(0), C = x.dim(1), F = w.fc_w.dim(0);
  const Tensor o = projection(att, w.attn_proj_w, w.attn_proj_b, tp);
  k::residual_forward(x.f32(), x.f32(), o.f32(), rows * C);
  const Tensor h = layernorm(x, w.ln2_w, w.ln2_b);
  Tensor fc = Tensor::empty({rows, F});
  k::linear_forward(fc.f32(), h.f32(), w.fc_w.f32(), w.fc_b.f32(), rows, C, F);
  Tensor act = Tensor::empty({rows, F});
  k::gelu_forward(act.f32(), fc.f32(), rows * F);
  const Tensor p = projection(act, w.mlp_proj_w, w.mlp_proj_b, tp);
  k::residual_forward(x.f32(), x.f32(), p.f32(), rows * C);
}

Tensor logits(const InferenceModel& model, const Tensor& x) {
  const int64_t rows = x.dim(0), C = x.dim(1), V = model.vocab_size();
  const Tensor h = layernorm(x, model.ln_f_w(), model.ln_f_b());
  Tensor out = Tensor::empty({rows, V});
  k::linear_forward(out.f32(), h.f32(), model.lm_head().f32(), nullptr, rows, C, V);
  return out;
}

}  // namespace tessera::gpt_math
