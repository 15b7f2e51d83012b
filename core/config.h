// The run configuration as plain structs. The launcher fills and validates them from YAML;
// the runtime only reads them (no YAML here). Field names follow Megatron/NeMo.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

struct ModelConfig {
  std::string arch = "gpt";  // gpt | llama | mlp
  int num_layers = 4;
  int hidden_size = 128;
  int num_attention_heads = 4;  // gpt and llama
  int ffn_hidden_size = 0;      // gpt and llama; 0 means 4 * hidden_size
  // llama only. Key/value heads (grouped-query attention): num_attention_heads for multi-head
  // attention, 1 for multi-query attention; 0 means num_attention_heads.
  int num_query_groups = 0;
  float rotary_base = 10000.f;              // llama only: RoPE theta
  std::string normalization = "layernorm";  // layernorm (gpt) | rmsnorm (llama)
  float norm_epsilon = 1e-5f;               // llama only (gpt's LayerNorm uses 1e-5)
  // llama only: a separate output projection instead of the token embedding's transpose.
  bool untie_embeddings_and_output_weights = false;
  // gpt only; 0 means hidden_size / num_attention_heads. Set when heads were pruned away, so
  // the attention width (heads * head_dim) is no longer the hidden size.
  int head_dim = 0;
  int seq_length = 64;
  // "chars" (the distinct characters of the training text), "bytes" (256), or an integer
  // written as a string ("50257") for token files.
  std::string vocab = "chars";
  std::string activation = "gelu";  // mlp only: gelu | relu
  int input_size = 0;               // mlp only: 0 means hidden_size
  int output_size = 0;              // mlp only: number of classes, 0 means the vocab size
  float init_std = 0.02f;
};

// Key/value heads of a llama model (num_query_groups, defaulting to the attention heads).
inline int query_groups(const ModelConfig& model) {
  return model.num_query_groups > 0 ? model.num_query_groups : model.num_attention_heads;
}

// Width of one attention head (Megatron's kv_channels).
inline int attention_head_dim(const ModelConfig& model) {
  return model.head_dim > 0 ? model.head_dim : model.hidden_size / model.num_attention_heads;
}

struct ParallelConfig {
  int tensor_model_parallel_size = 1;
  int pipeline_model_parallel_size = 1;
  int data_parallel_size = 0;  // 0 = auto: world / (tp * pp)
  std::string schedule = "1f1b";  // gpipe | 1f1b | interleaved
  int virtual_stages = 1;
  std::vector<int> partition;  // empty = even split (or auto)
  std::string recompute = "none";  // none | full | selective
  bool sequence_parallel = false;
  int zero_stage = 0;
  int zero_prefetch = 1;  // ZeRO-3: unit gathers in flight ahead of the unit computing
  double memory_cap_mib = 0;  // per-rank cap the memory model checks at start-up; 0 = none
  double bucket_mb = 0.25;  // measured best on the 2-core machine (docs/benchmarks.md)
  std::string grad_reduce_dtype = "fp32";  // fp32 | bf16: what data-parallel gradient reduction sends
  double timeout_s = 300.0;
  // How data-parallel replicas agree (runtime/train/outer_sync.h): `allreduce` averages every
  // step's gradients; `local_sgd` and `diloco` let each replica take sync_interval inner steps
  // on its own, then average the replicas' parameter change (DiLoCo: through an outer
  // Nesterov step; local SGD: plain averaging).
  std::string data_parallel_sync = "allreduce";  // allreduce | local_sgd | diloco
  int sync_interval = 1;        // H: inner steps between two syncs of a fragment
  double outer_lr = 0.7;        // DiLoCo's outer learning rate (Douillard et al., 2023)
  double outer_momentum = 0.9;  // its outer momentum
  bool outer_nesterov = true;
  int outer_fragments = 1;       // streaming: fragments (groups of blocks) synced at staggered steps
  int outer_delay = 0;           // tau: a fragment's reduction is applied this many steps after launch
  std::string outer_dtype = "fp32";  // fp32 | bf16: the dtype the outer deltas travel in
};

struct OptimizerConfig {
  std::string name = "adamw";
  double lr = 1e-3;
  double min_lr = 1e-4;
  int warmup_steps = 100;
  int decay_steps = 0;  // 0 = max_steps
  double beta1 = 0.9;
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // <= 0 disables
};

struct TrainConfig {
  int micro_batch_size = 12;
  int global_batch_size = 12;
  int max_steps = 2000;
  uint64_t seed = 1337;
  std::string precision = "fp32";  // fp32 | bf16 | fp16: the GEMMs' input dtype (runtime/compute)
  std::string gemm = "onednn";     // onednn | eigen (the fp32 reference): the CPU GEMM library
  // cpu | cuda: where the ops, parameters and activations live; cuda is one GPU per rank, the
  // node-local rank's (runtime/compute/cuda_backend.h).
  std::string device = "cpu";
  bool allow_tf32 = false;  // device cuda: fp32 GEMMs on TF32 tensor cores (10-bit mantissa inputs)
  // fp16 dynamic loss scaling (Megatron's names): the starting scale, the good steps after which
  // it doubles, and the floor it is never halved below.
  double initial_loss_scale = 65536.0;
  int loss_scale_window = 1000;
  double min_loss_scale = 1.0;
  // A step whose loss or gradient norm is NaN/Inf: abort the job with a clear error, or skip
  // its update (counted in the log line and metrics).
  std::string on_nan = "abort";
  int threads = 0;  // 0 = the cores of this node divided among its ranks
  int eval_interval = 250;  // 0 disables validation
  int eval_iters = 20;
  double peak_tflops = 0.0;  // 0 = measure the machine's fp32 GEMM roof at startup
  OptimizerConfig optimizer;
};

struct DataConfig {
  std::string path = "data/tinyshakespeare.txt";
  std::string format = "text";  // text | tokens (llm.c .bin)
  double val_fraction = 0.1;
  std::string val_path;  // tokens format: a separate validation file (optional)
  // tokens format: the SentencePiece .model the token files were made with (optional);
  // generate decodes with it and export --hf ships it.
  std::string tokenizer;
};

struct CheckpointConfig {
  std::string dir;
  int interval = 0;
  int keep = 3;
  std::string resume = "none";  // none | auto
};

// Where the weights come from before step 0 (not a resume: the step and optimizer start fresh).
struct InitConfig {
  // A checkpoint (step directory, or a checkpoint.dir for its newest) whose weights, and
  // pruning masks when it has them, are loaded under this run's layout. Empty: random init.
  std::string from;
};

// Gradual magnitude pruning during training (runtime/compression/gradual_prune.h); off while
// target_sparsity is 0.
struct PruneConfig {
  double target_sparsity = 0;  // s_f, reached at end_step
  int start_step = 0;          // t0: the masks start (all ones) once this many steps are done
  int end_step = 0;            // the last re-pruning; (end_step - start_step) % interval == 0
  int interval = 1;            // steps between re-prunings
  std::string scope = "global";  // global: one threshold over all tensors; layer: per tensor
};

struct LogConfig {
  int interval = 10;
  std::string metrics;  // JSONL path, empty = none
  std::string trace;    // Chrome trace path, empty = none
  std::string level = "info";
};

struct Config {
  std::string source;  // the file it came from, for messages
  ModelConfig model;
  ParallelConfig parallel;
  TrainConfig train;
  DataConfig data;
  CheckpointConfig checkpoint;
  InitConfig init;
  PruneConfig prune;
  LogConfig log;
};

}  // namespace tessera
