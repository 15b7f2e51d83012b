// Shared by the custom-layer and data-source tests: a tiny GPT config for a single-process
// Trainer, a token dataset, and a user-defined layer (a learned per-feature gain).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <tessera/tessera.h>

namespace tessera::test {

// 2 blocks of width 16 over 8-token sequences, 2 microbatches of 2 per step; the GEMM roof
// is not measured (peak_tflops given) so a trainer starts at once.
inline Config tiny_trainer_config(int vocab = 16) {
  Config c;
  c.model.arch = "gpt";
  c.model.num_layers = 2;
  c.model.hidden_size = 16;
  c.model.num_attention_heads = 2;
  c.model.ffn_hidden_size = 64;
  c.model.seq_length = 8;
  c.model.vocab = std::to_string(vocab);
  c.train.micro_batch_size = 2;
  c.train.global_batch_size = 4;
  c.train.max_steps = 4;
  c.train.seed = 7;
  c.train.eval_interval = 0;
  c.train.eval_iters = 2;
  c.train.peak_tflops = 1.0;
  c.train.optimizer.warmup_steps = 1;
  c.train.optimizer.lr = 1e-2;
  c.log.interval = 1000;
  return c;
}

// A stream with structure (token i is mostly followed by i + 3), so losses move.
inline Dataset tiny_dataset(int vocab = 16, size_t n = 2000) {
  Dataset d;
  d.vocab = Vocabulary::tokens(vocab);
  for (size_t i = 0; i < n; ++i) d.train.push_back(static_cast<int32_t>((i * 3 + (i % 7 == 0 ? 5 : 0)) % vocab));
  for (size_t i = 0; i < n / 4; ++i) d.val.push_back(static_cast<int32_t>((i * 3 + 1) % vocab));
  return d;
}

// y = g * x per feature, g initialised to `init` (1: the identity, so a model with it
// starts exactly where the model without it does).
class GainLayer : public Layer {
 public:
  GainLayer(const std::string& name, int64_t width, float init, uint64_t seed, const TpGroup& tp)
      : name_(name), width_(width), tp_(tp) {
    gain_ = make_parameter(name + ".gain", {width}, ShardSpec::replicated(), 0, 1, 0.f, init, seed, false);
    gain_.sequence_parallel_grad = tp.sequence_sharded();
  }
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override {
    Tensor y = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.f32()[i] = x.f32()[i] * gain_.value.f32()[i % width_];
    if (ctx.training) saved_.put(ctx.microbatch, x);
    return y;
  }
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override {
    const Tensor x = saved_.take(ctx.microbatch);
    Tensor dx = Tensor::empty(dy.shape());
    for (int64_t i = 0; i < dy.numel(); ++i) {
      dx.f32()[i] = dy.f32()[i] * gain_.value.f32()[i % width_];
      gain_.grad.f32()[i % width_] += dy.f32()[i] * x.f32()[i];
    }
    return dx;
  }
  std::vector<Parameter*> parameters() override { return {&gain_}; }
  Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  Shape output_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  int saved_count() const override { return saved_.size(); }

 private:
  std::string name_;
  int64_t width_;
  TpGroup tp_;
  Parameter gain_;
  ActivationStash<Tensor> saved_;
};

// A registry with "gain" (initialised to init) and where to put one after h.0.
inline LayerRegistry gain_registry(float init = 1.f) {
  LayerRegistry r;
  r.add("gain", [init](const CustomLayerArgs& a) {
    return std::make_unique<GainLayer>(a.spec.name, a.spec.in_features, init, a.seed, a.tp);
  });
  return r;
}

inline CustomLayerPlacement gain_after(const std::string& after, const std::string& name, int64_t width = 16) {
  CustomLayerPlacement p;
  p.after = after;
  p.name = name;
  p.type = "gain";
  p.in_features = width;
  p.cost.params = width;
  return p;
}

}  // namespace tessera::test
