// Tensor-parallel sharding rules per layer kind, mirroring runtime/model/*.cc.
#include "partitioner/tp_sharding.h"

#include "core/error.h"
#include "partitioner/llama_layers.h"

namespace tessera {
namespace {


// A tp region's entry and exit (tensor_parallel.h): all-reduce without sequence parallelism;
// with it, all-gather on entry and reduce-scatter on exit (same bytes as one ring all-reduce).
TpCollective enter_fwd(int64_t bytes, bool sp) {
  return {sp ? CollectiveKind::AllGather : CollectiveKind::AllReduce, bytes};
}

ShardedLayer gpt_embedding(const ModelConfig& m, int64_t vocab, int64_t B, const TpOptions& o) {
  const int64_t E = o.element_bytes;  // bytes per activation value
  const int64_t C = m.hidden_size, T = m.seq_length, N = B * T, tp = o.tp;
  const bool sp = o.sequence_parallel && tp > 1;
  ShardedLayer s;
  s.params = tp_padded_vocab(vocab, o.tp) / tp * C + T * C;  // wte split by vocab, wpe replicated
  s.input_bytes = 4 * N;  // int32 tokens
  s.output_bytes = E * N * C / (sp ? tp : 1);
  // Each rank looked up its vocabulary shard: the exit of the region sums the rows.
  if (tp > 1) {
    s.forward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, E * N * C});
    if (sp) s.backward_comm.push_back({CollectiveKind::AllGather, E * N * C});
  }
  return s;
}

ShardedLayer gpt_block(const ModelConfig& m, int64_t B, const TpOptions& o) {
  const int64_t E = o.element_bytes;  // bytes per activation value
  const int64_t C = m.hidden_size, F = ffn_size(m), T = m.seq_length, H = m.num_attention_heads;
  const int64_t tp = o.tp, N = B * T, D = attention_head_dim(m), A = H * D;  // A < C once heads are pruned
  const bool sp = o.sequence_parallel && tp > 1;
  const int64_t Ns = sp ? N / tp : N;  // rows outside the tp regions
  ShardedLayer s;
  // qkv, c_fc (weights and biases) split by columns; c_proj weights by rows; LNs and the
  // row-parallel biases replicated.
  s.params = (3 * A * C + 3 * A + A * C + C * F + F + F * C) / tp + 2 * C + 4 * C;
  s.gemms = {{N, 3 * A / tp, C},          // c_attn
             {T, T, D, B * H / tp},       // scores q k^T per head
             {T, D, T, B * H / tp},       // probs v per head
             {N, C, A / tp},              // attn c_proj (row parallel)
             {N, F / tp, C},              // c_fc
             {N, C, F / tp}};             // mlp c_proj (row parallel)
  // Saved (transformer_block.h Saved): x, ln1, x2, ln2 and 4 LN statistics rows per token in
  // the sequence-sharded region; qkv, attention output, probs, fc and gelu output split by tp.
  // Only the GEMM inputs (ln1, ln2, attention and gelu outputs) are in the compute dtype (E
  // bytes); x, x2, the statistics, qkv and fc stay fp32 under mixed precision too.
  const int64_t replicated = (2 * 4 + 2 * E) * Ns * C + 4 * 4 * Ns;
  s.attention_bytes = E * B * (H / tp) * T * T;
  s.activation_bytes = replicated + 4 * (3 * N * A / tp + N * F / tp) + E * (N * A / tp + N * F / tp) +
                       s.attention_bytes;
  s.attention_flops = 4.0 * N * T * A / tp;
  s.input_bytes = s.output_bytes = E * Ns * C;
  if (tp > 1) {
    const int64_t bytes = E * N * C;
    // Forward: enter (identity or all-gather) and exit (all-reduce or reduce-scatter), twice.
    for (int i = 0; i < 2; ++i) {
      if (sp) s.forward_comm.push_back(enter_fwd(bytes, sp));
      s.forward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, bytes});
    }
    // Backward: exit's backward (identity or all-gather), the entry's backward (all-reduce or
    // reduce-scatter); with sequence parallelism ln1/ln2 are gathered again (not kept whole).
    for (int i = 0; i < 2; ++i) {
      if (sp) {
        s.backward_comm.push_back({CollectiveKind::AllGather, bytes});
        s.backward_comm.push_back({CollectiveKind::AllGather, bytes});
        s.backward_comm.push_back({CollectiveKind::ReduceScatter, bytes});
      } else {
        s.backward_comm.push_back({CollectiveKind::AllReduce, bytes});
      }
    }
  }
  return s;
}

// The head: optional final LayerNorm (gpt), vocab-parallel logits and cross-entropy.
ShardedLayer head(int64_t width, int64_t out, bool bias, bool norm, int64_t N, const TpOptions& o) {
  const int64_t E = o.element_bytes;  // bytes per activation value
  const int64_t tp = o.tp, Vl = tp_padded_vocab(out, o.tp) / tp;
  const bool sp = o.sequence_parallel && tp > 1 && norm;
  const int64_t Ns = sp ? N / tp : N;
  ShardedLayer s;
  s.params = Vl * width + (bias ? Vl : 0) + (norm ? 2 * width : 0);
  s.gemms = {{N, Vl, width}};
  // Saved: input x, normed x, their 2 statistics (norm only), the gathered input with
  // sequence parallelism, the logit shard, row max and the [2, N] sums.
  s.activation_bytes = E * (Ns * width + (norm ? Ns * width + 2 * Ns : 0) + (sp ? N * width : 0) +
                               N * Vl + 3 * N);
  s.input_bytes = E * Ns * width;
  s.output_bytes = E;
  if (tp > 1) {
    if (sp) s.forward_comm.push_back({CollectiveKind::AllGather, E * N * width});
    s.forward_comm.push_back({CollectiveKind::AllReduce, E * N});      // row max
    s.forward_comm.push_back({CollectiveKind::AllReduce, E * 2 * N});  // exp sums, target logits
    s.backward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, E * N * width});
  }
  return s;
}

ShardedLayer mlp_linear(const LayerSpec& l, int64_t N, const TpOptions& o) {
  const int64_t E = o.element_bytes;  // bytes per activation value
  const int64_t tp = o.tp, in = l.in_features, out = l.out_features;
  ShardedLayer s;
  using R = LayerSpec::TpRule;
  // Saved (linear_layer.cc): the input x and the pre-activation. Column: x whole, output split;
  // Row: x split (a column layer's output), output reduced whole; Replicated: all whole.
  switch (l.tp_rule) {
    case R::Column:
      s.params = (in * out + out) / tp;
      s.gemms = {{N, out / tp, in}};
      s.activation_bytes = E * (N * in + N * out / tp);
      s.input_bytes = E * N * in;
      s.output_bytes = E * N * out / tp;
      if (tp > 1) s.backward_comm.push_back({CollectiveKind::AllReduce, E * N * in});
      break;
    case R::Row:
      s.params = in * out / tp + out;
      s.gemms = {{N, out, in / tp}};
      s.activation_bytes = E * (N * in / tp + N * out);
      s.input_bytes = E * N * in / tp;
      s.output_bytes = E * N * out;
      if (tp > 1) s.forward_comm.push_back({CollectiveKind::AllReduce, E * N * out});
      break;
    case R::Replicated:
      s.params = in * out + out;
      s.gemms = {{N, out, in}};
      s.activation_bytes = E * (N * in + N * out);
      s.input_bytes = E * N * in;
      s.output_bytes = E * N * out;
      break;
  }
  return s;
}

}  // namespace

int64_t tp_padded_vocab(int64_t vocab, int tp) { return (vocab + tp - 1) / tp * tp; }

ShardedLayer shard_layer(const LayerSpec& l, const ModelConfig& m, int64_t vocab, int64_t B,
                         const TpOptions& o) {
  TESSERA_CHECK(o.tp >= 1 && B >= 1, "tp {} and micro batch {} must be positive", o.tp, B);
  const int64_t N = B * m.seq_length;
  const bool gpt = m.arch == "gpt";
  ShardedLayer s;
  if (m.arch == "llama" && l.kind != LayerKind::Custom) {
    s = l.kind == LayerKind::Embedding ? llama_embedding_shard(m, vocab, B, o)
        : l.kind == LayerKind::Head    ? llama_head_shard(m, vocab, B, o)
                                       : llama_block_shard(m, B, o);
    for (const Gemm& g : s.gemms) s.forward_flops += g.flops();
    s.backward_flops = 2.0 * s.forward_flops;
    return s;
  }
  switch (l.kind) {
    case LayerKind::Embedding:
      if (gpt) {
        s = gpt_embedding(m, vocab, B, o);
      } else {
        const int64_t in = m.input_size > 0 ? m.input_size : m.hidden_size;
        s.params = tp_padded_vocab(vocab, o.tp) / o.tp * in;
        s.input_bytes = 4 * N;  // int32 tokens
        s.output_bytes = int64_t{o.element_bytes} * N * in;
        if (o.tp > 1) s.forward_comm.push_back({CollectiveKind::AllReduce, int64_t{o.element_bytes} * N * in});
      }
      break;
    case LayerKind::TransformerBlock: s = gpt_block(m, B, o); break;
    case LayerKind::Linear: s = mlp_linear(l, N, o); break;
    case LayerKind::Head:
      s = gpt ? head(m.hidden_size, vocab, false, true, N, o)
              : head(l.in_features, l.out_features, true, false, N, o);
      break;
    case LayerKind::Custom: {
      // Replicated: every tp rank holds and runs all of it, at the per-token costs its author
      // gave; no GEMMs, so the cost model times it as element-wise work.
      // Under sequence parallelism it sees this rank's share of the rows only.
      const int64_t rows = o.sequence_parallel && o.tp > 1 ? N / o.tp : N;
      const CustomLayerCost& c = l.custom_cost;
      s.params = l.params;
      s.activation_bytes = static_cast<int64_t>(rows * c.activation_bytes_per_token * o.element_bytes / 4);
      s.input_bytes = int64_t{o.element_bytes} * rows * l.in_features;
      s.output_bytes = int64_t{o.element_bytes} * rows * l.out_features;
      s.forward_flops = rows * c.forward_flops_per_token;
      s.backward_flops = rows * c.backward_flops_per_token;
      return s;
    }
  }
  for (const Gemm& g : s.gemms) s.forward_flops += g.flops();
  s.backward_flops = 2.0 * s.forward_flops;
  return s;
}

std::vector<ShardedLayer> shard_graph(const LayerGraph& g, const ModelConfig& m, int64_t B,
                                      const TpOptions& o) {
  std::vector<ShardedLayer> out;
  out.reserve(g.layers.size());
  for (const LayerSpec& l : g.layers) out.push_back(shard_layer(l, m, g.vocab_size, B, o));
  return out;
}

}  // namespace tessera
