// The partitioner's view of a llama (partitioner/llama_layers.cc) against the runtime's: the
// layer graph counts exactly the parameters the built model holds, tied or untied, and each tp
// rank's sharded count is what that rank's layers hold.
#include <catch2/catch.hpp>

#include "partitioner/layer_graph.h"
#include "partitioner/tp_sharding.h"
#include "runtime/model/model.h"

namespace tessera {
namespace {

ModelConfig llama(bool untied) {
  ModelConfig m;
  m.arch = "llama";
  m.normalization = "rmsnorm";
  m.num_layers = 2;
  m.hidden_size = 32;
  m.num_attention_heads = 8;
  m.num_query_groups = 2;
  m.ffn_hidden_size = 40;
  m.seq_length = 8;
  m.untie_embeddings_and_output_weights = untied;
  return m;
}

int64_t held(Model& model) {
  int64_t n = 0;
  for (Parameter* p : model.parameters()) n += p->value.numel();
  return n;
}

}  // namespace

TEST_CASE("llama layer graph counts the built model's parameters", "[llama][partitioner]") {
  for (bool untied : {false, true}) {
    CAPTURE(untied);
    const ModelConfig m = llama(untied);
    const int64_t vocab = 64;  // divisible by tp 2: no padding rows
    const LayerGraph g = build_layer_graph(m, vocab, 2);
    Model model(m, g, TpGroup::single(), 1);
    CHECK(g.total_params() == held(model));
    CHECK(g.layers[1].kind == LayerKind::TransformerBlock);
    CHECK(g.flops_per_token() > 0);
    // One tp rank of two: the graph's sharded counts, layer by layer, are what rank 0's layers hold.
    TpOptions tp;
    tp.tp = 2;
    const std::vector<ShardedLayer> shards = shard_graph(g, m, 2, tp);
    for (size_t i = 0; i < g.layers.size(); ++i) {
      INFO(g.layers[i].name);
      // The rank-0 shard of each parameter, as make_parameter would keep it.
      int64_t n = 0;
      for (Parameter* p : model.layers()[i]->parameters()) {
        n += p->shard.kind == ShardSpec::Kind::Split ? p->value.numel() / 2 : p->value.numel();
      }
      CHECK(shards[i].params == n);
    }
  }
}

}  // namespace tessera
