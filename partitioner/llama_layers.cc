// Llama layer graph nodes and their tensor-parallel shards (see llama_layers.h).
#include "partitioner/llama_layers.h"

namespace tessera {
namespace {

constexpr int64_t kF32 = 4;

struct Dims {
  int64_t C, F, T, H, G, D, A, Kw;  // Kw: key (or value) width, groups * head_dim
};

Dims dims(const ModelConfig& m) {
  const int64_t H = m.num_attention_heads, G = query_groups(m), D = attention_head_dim(m);
  return {m.hidden_size, ffn_size(m), m.seq_length, H, G, D, H * D, G * D};
}

// A tp region's entry/exit as tensor_parallel.h implements them: all-reduce without sequence
// parallelism, all-gather in and reduce-scatter out with it.
void add_region_comm(ShardedLayer& s, int64_t bytes, bool sp, int regions) {
  for (int i = 0; i < regions; ++i) {
    if (sp) s.forward_comm.push_back({CollectiveKind::AllGather, bytes});
    s.forward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, bytes});
    if (sp) {
      // The exit's all-gather, the input re-gathered for the weight gradients, the entry's
      // reduce-scatter.
      s.backward_comm.push_back({CollectiveKind::AllGather, bytes});
      s.backward_comm.push_back({CollectiveKind::AllGather, bytes});
      s.backward_comm.push_back({CollectiveKind::ReduceScatter, bytes});
    } else {
      s.backward_comm.push_back({CollectiveKind::AllReduce, bytes});
    }
  }
}

}  // namespace

LayerSpec llama_embedding_spec(const ModelConfig& m, int64_t vocab, int64_t) {
  LayerSpec s{"embedding", LayerKind::Embedding};
  s.params = vocab * m.hidden_size;  // no position embedding: positions are rotary
  return s;
}

LayerSpec llama_block_spec(const ModelConfig& m, int index, int64_t B) {
  const Dims d = dims(m);
  const int64_t N = B * d.T;
  LayerSpec s{"h." + std::to_string(index), LayerKind::TransformerBlock};
  // q, k, v, o; gate, up, down.
  const int64_t matmul_params = d.A * d.C + 2 * d.Kw * d.C + d.C * d.A + 3 * d.C * d.F;
  s.params = matmul_params + 2 * d.C;
  s.forward_flops = 2.0 * N * matmul_params + 4.0 * N * d.T * d.A;
  s.backward_flops = 2.0 * s.forward_flops;
  // Saved (llama_block.h Saved): x, n1, x2, n2 and 2 rstd rows; packed q|k|v, attention out,
  // probs; gate, up, act.
  s.activation_bytes = kF32 * (4 * N * d.C + 2 * N + 4 * N * d.A + B * d.H * d.T * d.T + 3 * N * d.F);
  return s;
}

LayerSpec llama_head_spec(const ModelConfig& m, int64_t vocab, int64_t B) {
  const int64_t C = m.hidden_size, N = B * m.seq_length;
  LayerSpec s{"head", LayerKind::Head};
  // A tied head owns only the final norm; the projection's parameters are the embedding's.
  s.params = C + (m.untie_embeddings_and_output_weights ? C * vocab : 0);
  s.forward_flops = 2.0 * N * C * vocab;
  s.backward_flops = 2.0 * s.forward_flops;
  s.activation_bytes = kF32 * (2 * N * C + N * vocab + 4 * N);
  return s;
}

ShardedLayer llama_embedding_shard(const ModelConfig& m, int64_t vocab, int64_t B, const TpOptions& o) {
  const int64_t E = o.element_bytes, C = m.hidden_size, N = B * m.seq_length, tp = o.tp;
  const bool sp = o.sequence_parallel && tp > 1;
  ShardedLayer s;
  s.params = tp_padded_vocab(vocab, o.tp) / tp * C;
  s.input_bytes = 4 * N;  // int32 tokens
  s.output_bytes = E * N * C / (sp ? tp : 1);
  if (tp > 1) {
    s.forward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, E * N * C});
    if (sp) s.backward_comm.push_back({CollectiveKind::AllGather, E * N * C});
  }
  return s;
}

ShardedLayer llama_block_shard(const ModelConfig& m, int64_t B, const TpOptions& o) {
  const Dims d = dims(m);
  const int64_t E = o.element_bytes, tp = o.tp, N = B * d.T;
  const bool sp = o.sequence_parallel && tp > 1;
  const int64_t Ns = sp ? N / tp : N;  // rows outside the tp regions
  ShardedLayer s;
  s.params = (2 * d.A * d.C + 2 * d.Kw * d.C + 3 * d.C * d.F) / tp + 2 * d.C;
  s.gemms = {{N, d.A / tp, d.C},                   // q_proj
             {N, 2 * d.Kw / tp, d.C},              // k_proj, v_proj
             {d.T, d.T, d.D, B * d.H / tp},        // scores per head
             {d.T, d.D, d.T, B * d.H / tp},        // probs v per head
             {N, d.C, d.A / tp},                   // o_proj (row parallel)
             {N, 2 * d.F / tp, d.C},               // gate_proj, up_proj
             {N, d.C, d.F / tp}};                  // down_proj (row parallel)
  s.attention_bytes = E * B * (d.H / tp) * d.T * d.T;
  s.activation_bytes = E * (4 * Ns * d.C + 2 * Ns) + E * (4 * N * d.A / tp + 3 * N * d.F / tp) + s.attention_bytes;
  s.attention_flops = 4.0 * N * d.T * d.A / tp;
  s.input_bytes = s.output_bytes = E * Ns * d.C;
  if (tp > 1) add_region_comm(s, E * N * d.C, sp, 2);
  return s;
}

ShardedLayer llama_head_shard(const ModelConfig& m, int64_t vocab, int64_t B, const TpOptions& o) {
  const int64_t E = o.element_bytes, C = m.hidden_size, N = B * m.seq_length, tp = o.tp;
  const int64_t Vl = tp_padded_vocab(vocab, o.tp) / tp;
  const bool sp = o.sequence_parallel && tp > 1;
  const int64_t Ns = sp ? N / tp : N;
  ShardedLayer s;
  s.params = C + (m.untie_embeddings_and_output_weights ? Vl * C : 0);
  s.tied_params = m.untie_embeddings_and_output_weights ? 0 : Vl * C;
  s.gemms = {{N, Vl, C}};
  // Saved: input, normed input and its rstd, the gathered input with sequence parallelism, the
  // logit shard, row max and the [2, N] sums.
  s.activation_bytes = E * (2 * Ns * C + Ns + (sp ? N * C : 0) + N * Vl + 3 * N);
  s.input_bytes = E * Ns * C;
  s.output_bytes = E;
  if (tp > 1) {
    if (sp) s.forward_comm.push_back({CollectiveKind::AllGather, E * N * C});
    s.forward_comm.push_back({CollectiveKind::AllReduce, E * N});
    s.forward_comm.push_back({CollectiveKind::AllReduce, E * 2 * N});
    s.backward_comm.push_back({sp ? CollectiveKind::ReduceScatter : CollectiveKind::AllReduce, E * N * C});
  }
  return s;
}

}  // namespace tessera
