// PyTorch parity: the GPT and MLP built from the same weights as the reference script
// (tests/reference/make_fixtures.py) give the same logits, loss, gradients and 10-step AdamW
// loss trajectory.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/optimizer.h"

namespace tessera {
namespace {

struct Reference {
  SafetensorsFile file;
  ModelConfig model;
  OptimizerConfig opt;
  int64_t vocab = 0;
  int64_t batch = 0;
  const Tensor& at(const std::string& name) const {
    auto it = file.tensors.find(name);
    REQUIRE(it != file.tensors.end());
    return it->second;
  }
};

Reference load_reference(const std::string& arch) {
  Reference r;
  r.file = read_safetensors(std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/" + arch + "_reference.safetensors");
  const auto& md = r.file.metadata;
  auto num = [&](const char* key) { return std::stod(md.at(key)); };
  r.model.arch = arch;
  r.model.num_layers = static_cast<int>(num("num_layers"));
  r.model.hidden_size = static_cast<int>(num("hidden_size"));
  r.model.seq_length = static_cast<int>(num("seq_length"));
  if (arch == "gpt") {
    r.model.num_attention_heads = static_cast<int>(num("heads"));
    r.model.ffn_hidden_size = static_cast<int>(num("ffn"));
  } else {
    r.model.input_size = static_cast<int>(num("input_size"));
  }
  r.vocab = static_cast<int64_t>(num("vocab_size"));
  r.batch = static_cast<int64_t>(num("batch"));
  const auto betas = nlohmann::json::parse(md.at("betas"));
  r.opt.lr = r.opt.min_lr = num("lr");
  r.opt.warmup_steps = 0;
  r.opt.beta1 = betas[0];
  r.opt.beta2 = betas[1];
  r.opt.eps = num("eps");
  r.opt.weight_decay = num("weight_decay");
  r.opt.grad_clip = num("grad_clip");
  return r;
}

// Largest |a - b| relative to the largest |b|: a normalised error robust to tiny entries.
double normalised_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.numel() == b.numel());
  double max_diff = 0, max_ref = 1e-12;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(a.f32()[i]) - double(b.f32()[i])));
    max_ref = std::max(max_ref, std::abs(double(b.f32()[i])));
  }
  return max_diff / max_ref;
}

void check_parity(const std::string& arch) {
  const Reference ref = load_reference(arch);
  const LayerGraph graph = build_layer_graph(ref.model, ref.vocab, ref.batch);
  Model model(ref.model, graph, TpGroup::single(), 1);
  for (Parameter* p : model.parameters()) {
    INFO(p->name);
    p->value.copy_from(ref.at("params." + p->name));
  }
  const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
  MicrobatchContext ctx;
  ctx.compute = compute.get();
  ctx.tokens = ref.at("batch.tokens");
  ctx.targets = ref.at("batch.targets");

  const Tensor loss = model.forward(Tensor(), ctx);
  auto* head = dynamic_cast<HeadLayer*>(model.layers().back().get());
  REQUIRE(head != nullptr);
  CHECK(normalised_error(head->last_logits(), ref.at("logits")) < 1e-5);
  CHECK(std::abs(loss.f32()[0] - ref.at("loss").f32()[0]) / ref.at("loss").f32()[0] < 1e-6);
  model.backward(Tensor(), ctx);
  for (Parameter* p : model.parameters()) {
    INFO("grad of " << p->name);
    CHECK(normalised_error(p->grad, ref.at("grads." + p->name)) < 1e-4);
  }

  // 10 AdamW steps on the same batch with clipping, from the reference's initial weights.
  for (Parameter* p : model.parameters()) p->value.copy_from(ref.at("params." + p->name));
  AdamW opt(model.parameters(), ref.opt, compute->ops());
  const Tensor& losses = ref.at("losses_10steps");
  const Tensor& norms = ref.at("grad_norms_10steps");
  for (int step = 0; step < losses.numel(); ++step) {
    model.zero_grad();
    const float l = model.forward(Tensor(), ctx).f32()[0];
    model.backward(Tensor(), ctx);
    const double norm =
        clip_grad_norm(model.parameters(), ref.opt.grad_clip, TpGroup::single(), nullptr, compute->ops());
    INFO("step " << step);
    CHECK(std::abs(l - losses.f32()[step]) / losses.f32()[step] < 1e-5);
    CHECK(std::abs(norm - norms.f32()[step]) / norms.f32()[step] < 1e-4);
    opt.step(learning_rate(ref.opt, step, losses.numel()), 1.0f);  // clipped above
  }
}

}  // namespace

TEST_CASE("GPT matches the PyTorch reference", "[parity][gpt]") { check_parity("gpt"); }

TEST_CASE("MLP matches the PyTorch reference", "[parity][mlp]") { check_parity("mlp"); }

}  // namespace tessera
