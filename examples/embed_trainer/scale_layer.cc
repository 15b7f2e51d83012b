// ScaleLayer: forward y = s * x, backward dx = s * dy and ds += sum(dy * x).
#include "scale_layer.h"

ScaleLayer::ScaleLayer(std::string name, int64_t width, uint64_t seed, tessera::TpGroup tp)
    : name_(std::move(name)), width_(width), tp_(tp) {
  // Replicated over tensor-parallel ranks (tp rank 0 of 1); std 0 means "fill with 1"; no
  // weight decay for a scalar gain, as for LayerNorm weights. The name must start with the
  // layer's: checkpoints find parameters by name.
  scale_ = tessera::make_parameter(name_ + ".scale", {1}, tessera::ShardSpec::replicated(), 0, 1, 0.f, 1.f, seed,
                                   false);
  // Under sequence parallelism each tp rank sees a slice of the rows: its gradient is partial
  // and the trainer sums it over tp.
  scale_.sequence_parallel_grad = tp.sequence_sharded();
}

tessera::Tensor ScaleLayer::forward(const tessera::Tensor& x, const tessera::MicrobatchContext& ctx) {
  TESSERA_CHECK(x.ndim() == 2 && x.dim(1) == width_, "{}: expected [rows, {}] input, got {}", name_, width_,
                tessera::shape_string(x.shape()));
  const float s = value();
  tessera::Tensor y = tessera::Tensor::empty(x.shape());
  const float* in = x.f32();
  float* out = y.f32();
  for (int64_t i = 0; i < x.numel(); ++i) out[i] = s * in[i];
  if (ctx.training) saved_.put(ctx.microbatch, x);  // x is only read, so no copy is needed
  return y;
}

tessera::Tensor ScaleLayer::backward(const tessera::Tensor& dy, const tessera::MicrobatchContext& ctx) {
  const tessera::Tensor x = saved_.take(ctx.microbatch);
  const float s = value();
  tessera::Tensor dx = tessera::Tensor::empty(dy.shape());
  const float* g = dy.f32();
  const float* in = x.f32();
  float* out = dx.f32();
  double ds = 0;
  for (int64_t i = 0; i < dy.numel(); ++i) {
    out[i] = s * g[i];
    ds += static_cast<double>(g[i]) * in[i];
  }
  scale_.grad.f32()[0] += static_cast<float>(ds);
  return dx;
}

void register_scale_layer(tessera::LayerRegistry& registry) {
  registry.add("scale", [](const tessera::CustomLayerArgs& a) {
    return std::make_unique<ScaleLayer>(a.spec.name, a.spec.in_features, a.seed, a.tp);
  });
}

tessera::CustomLayerPlacement scale_layer_after(const std::string& after, const std::string& name, int64_t width) {
  tessera::CustomLayerPlacement p;
  p.after = after;
  p.name = name;
  p.type = "scale";
  p.in_features = width;
  p.cost.params = 1;
  p.cost.forward_flops_per_token = static_cast<double>(width);
  p.cost.backward_flops_per_token = 2.0 * static_cast<double>(width);
  return p;
}
