// The Llama KV-cache decode (runtime/inference/llama_inference.h) against the training model's
// full forward: a prompt prefilled at once, then one token at a time, gives the training
// model's logits at every position, for MHA, GQA and MQA, tied and untied; and generation
// through the SequenceModel is deterministic and refills the cache when the context is full.
#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/compute/compute.h"
#include "partitioner/layer_graph.h"
#include "runtime/inference/llama_inference.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"
#include "runtime/serving/llama_sequence_model.h"
#include "runtime/serving/sequence_generate.h"

namespace tessera {
namespace {

ModelConfig tiny_llama(int groups, bool untied) {
  ModelConfig m;
  m.arch = "llama";
  m.normalization = "rmsnorm";
  m.num_layers = 2;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.num_query_groups = groups;
  m.ffn_hidden_size = 48;
  m.seq_length = 12;
  m.untie_embeddings_and_output_weights = untied;
  m.init_std = 0.2f;  // large enough that attention is peaked and every op matters
  return m;
}

double normalised_error(const float* a, const float* b, int64_t n) {
  double diff = 0, ref = 1e-12;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    ref = std::max(ref, std::abs(double(b[i])));
  }
  return diff / ref;
}

}  // namespace

TEST_CASE("llama KV-cache decode matches the training model's forward", "[inference][llama]") {
  for (auto [groups, untied] : {std::pair<int, bool>{4, false}, {2, true}, {1, true}}) {
    CAPTURE(groups, untied);
    const ModelConfig m = tiny_llama(groups, untied);
    const int64_t V = 19, T = m.seq_length;
    const LayerGraph graph = build_layer_graph(m, V, 1);
    Model model(m, graph, TpGroup::single(), 7);
    std::map<std::string, Tensor> tensors;
    for (Parameter* p : model.parameters()) tensors[p->name] = p->value;
    CHECK(tensors.count("lm_head.weight") == (untied ? 1u : 0u));

    const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
    MicrobatchContext ctx;
    ctx.compute = compute.get();
    ctx.tokens = Tensor::empty({1, T}, DType::I32);
    for (int64_t t = 0; t < T; ++t) ctx.tokens.i32()[t] = static_cast<int32_t>((t * 7 + 3) % V);
    ctx.targets = Tensor::zeros({1, T}, DType::I32);
    ctx.training = false;
    model.forward(Tensor(), ctx);
    const Tensor& want = dynamic_cast<HeadLayer*>(model.layers().back().get())->last_logits();

    const LlamaInferenceModel inference(m, tensors);
    LlamaKvCache cache(inference);
    const int64_t prompt = 5;
    const std::vector<int32_t> first(ctx.tokens.i32(), ctx.tokens.i32() + prompt);
    Tensor got = inference.decode({&cache}, {first});
    CHECK(normalised_error(got.f32(), want.f32() + (prompt - 1) * V, V) < 1e-5);
    for (int64_t t = prompt; t < T; ++t) {
      INFO("position " << t);
      got = inference.decode({&cache}, {{ctx.tokens.i32()[t]}});
      CHECK(normalised_error(got.f32(), want.f32() + t * V, V) < 1e-5);
    }
    CHECK(cache.length() == T);
    CHECK(inference.kv_width() == groups * 8);  // the cache holds groups, not heads
  }
}

TEST_CASE("llama generation is deterministic and runs past the context", "[inference][llama]") {
  const ModelConfig m = tiny_llama(2, true);
  const LayerGraph graph = build_layer_graph(m, 19, 1);
  Model model(m, graph, TpGroup::single(), 3);
  std::map<std::string, Tensor> tensors;
  for (Parameter* p : model.parameters()) tensors[p->name] = p->value;
  const LlamaInferenceModel inference(m, tensors);
  const LlamaSequenceModel sequences(inference);
  const SamplingOptions sampling{0.9f, 5};
  // 3 * context tokens: the cache is refilled from the newest half twice.
  const GenerationResult a = generate_sequence(sequences, {1, 2, 3}, 3 * m.seq_length, sampling, 42);
  const GenerationResult b = generate_sequence(sequences, {1, 2, 3}, 3 * m.seq_length, sampling, 42);
  CHECK(a.tokens.size() == 3 + 3 * static_cast<size_t>(m.seq_length));
  CHECK(a.tokens == b.tokens);
  for (int32_t t : a.tokens) CHECK((t >= 0 && t < 19));
  CHECK_THROWS_AS(generate_sequence(sequences, {19}, 1, sampling, 1), InputError);
}

}  // namespace tessera
