// Hugging Face parity for the llama architecture: Tessera's model, loaded with the weights of
// transformers' LlamaForCausalLM (tests/reference/make_llama_fixtures.py) through the
// Hugging Face name mapping, gives the same logits, loss, gradients and 10-step AdamW
// trajectory, at the GPT fixtures' tolerances. MHA tied, GQA and MQA untied.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/interop/hf_names.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/optimizer.h"

namespace tessera {
namespace {

struct LlamaReference {
  SafetensorsFile file;
  ModelConfig model;
  OptimizerConfig opt;
  int64_t vocab = 0, batch = 0;
  const Tensor& at(const std::string& name) const {
    auto it = file.tensors.find(name);
    INFO(name);
    REQUIRE(it != file.tensors.end());
    return it->second;
  }
  // A Tessera parameter's tensor in the fixture, which uses transformers' names.
  const Tensor& param(const std::string& prefix, const std::string& tessera_name) const {
    const auto hf = hf_name(model, tessera_name);
    INFO(tessera_name);
    REQUIRE(hf.has_value());
    REQUIRE_FALSE(hf->transposed);
    return at(prefix + hf->name);
  }
};

LlamaReference load(const std::string& variant) {
  LlamaReference r;
  r.file = read_safetensors(std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/" + variant + ".safetensors");
  const auto& md = r.file.metadata;
  auto num = [&](const char* key) { return std::stod(md.at(key)); };
  ModelConfig& m = r.model;
  m.arch = "llama";
  m.normalization = "rmsnorm";
  m.num_layers = static_cast<int>(num("num_layers"));
  m.hidden_size = static_cast<int>(num("hidden_size"));
  m.seq_length = static_cast<int>(num("seq_length"));
  m.num_attention_heads = static_cast<int>(num("heads"));
  m.num_query_groups = static_cast<int>(num("query_groups"));
  m.ffn_hidden_size = static_cast<int>(num("ffn"));
  m.rotary_base = static_cast<float>(num("rope_theta"));
  m.norm_epsilon = static_cast<float>(num("rms_norm_eps"));
  m.untie_embeddings_and_output_weights = md.at("tied") == "false";
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

double normalised_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.numel() == b.numel());
  double max_diff = 0, max_ref = 1e-12;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(a.f32()[i]) - double(b.f32()[i])));
    max_ref = std::max(max_ref, std::abs(double(b.f32()[i])));
  }
  return max_diff / max_ref;
}

void load_weights(Model& model, const LlamaReference& ref) {
  for (Parameter* p : model.parameters()) p->value.copy_from(ref.param("params.", p->name));
}

void check_parity(const std::string& variant) {
  const LlamaReference ref = load(variant);
  const LayerGraph graph = build_layer_graph(ref.model, ref.vocab, ref.batch);
  Model model(ref.model, graph, TpGroup::single(), 1);
  // Every fixture tensor is a parameter of the model: a tied head owns no weight of its own.
  const int64_t fixture_params = std::count_if(ref.file.tensors.begin(), ref.file.tensors.end(),
                                               [](const auto& t) { return t.first.rfind("params.", 0) == 0; });
  CHECK(static_cast<int64_t>(model.parameters().size()) == fixture_params);
  load_weights(model, ref);
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
    CHECK(normalised_error(p->grad, ref.param("grads.", p->name)) < 1e-4);
  }

  load_weights(model, ref);
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

TEST_CASE("Llama (MHA, tied) matches transformers' LlamaForCausalLM", "[parity][llama]") {
  check_parity("llama_mha_tied");
}

TEST_CASE("Llama (GQA, untied) matches transformers' LlamaForCausalLM", "[parity][llama]") {
  check_parity("llama_gqa_untied");
}

TEST_CASE("Llama (MQA, untied) matches transformers' LlamaForCausalLM", "[parity][llama]") {
  check_parity("llama_mqa_untied");
}

}  // namespace tessera
