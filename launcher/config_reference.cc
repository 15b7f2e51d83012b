// The generated config reference: the schema's rows as markdown tables, with what each key does.
#include "launcher/config_reference.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "launcher/config_schema.h"

namespace tessera::config {
namespace {

// What each key does. The type, default and rule come from the schema, so only the meaning
// lives here; a key added to the schema without one fails the docs test.
const std::map<std::string, std::string>& meanings() {
  static const std::map<std::string, std::string> table = {
      {"model.arch",
       "`gpt`: a nanoGPT-style decoder (token + position embedding, pre-LayerNorm blocks, final LayerNorm, "
       "untied head). `llama`: a Llama-family decoder (RMSNorm, rotary position embeddings, grouped-query "
       "attention, SwiGLU MLP, no biases; needs `normalization: rmsnorm`). `mlp`: each position predicts the next token from its own token alone (embedding, "
       "`num_layers` Linear + activation layers, linear head)."},
      {"model.num_layers",
       "gpt: transformer blocks; mlp: Linear + activation layers. The layer graph has `num_layers + 2` "
       "layers (plus the embedding and the head)."},
      {"model.hidden_size", "Width of the residual stream (gpt) or of the hidden layers (mlp)."},
      {"model.num_attention_heads",
       "gpt and llama (query heads). Must divide `hidden_size` (unless `head_dim` is set) and be divisible by "
       "`tensor_model_parallel_size`."},
      {"model.ffn_hidden_size",
       "gpt and llama: inner width of the block's MLP (llama: of each of the gate and up projections); 0 or "
       "null means `4 * hidden_size`."},
      {"model.num_query_groups",
       "llama only: key/value heads of grouped-query attention; `num_attention_heads` (or 0) is multi-head "
       "attention, 1 multi-query attention. Must divide `num_attention_heads`; tensor parallelism splits "
       "the groups, so `tensor_model_parallel_size` must divide it too (groups are not replicated)."},
      {"model.rotary_base", "llama only: theta of the rotary position embedding (Llama 2: 10000, Llama 3: 500000)."},
      {"model.normalization",
       "`layernorm` (gpt, which requires it) or `rmsnorm` (llama, which requires it), for every norm of the model."},
      {"model.norm_epsilon", "llama only: epsilon of RMSNorm (gpt's LayerNorm uses 1e-5)."},
      {"model.untie_embeddings_and_output_weights",
       "llama only: `false` (the default, as Megatron) makes the output projection the token embedding's "
       "transpose, one parameter `wte.weight`; `true` gives the head its own `lm_head.weight`. Under pipeline "
       "parallelism the last stage's head keeps a copy of the table whose gradient is summed with the first "
       "stage's every step (Megatron's embedding group). gpt's head is always untied."},
      {"model.head_dim",
       "gpt only: width of one attention head; 0 means `hidden_size / num_attention_heads`. `tessera prune "
       "--structured heads=...` sets it for a model whose heads were removed, whose attention width "
       "(heads x head_dim) then differs from `hidden_size` ([compression.md](compression.md))."},
      {"model.seq_length",
       "Tokens of context per sample (gpt: also the size of the position embedding). Each data split "
       "must hold at least `seq_length + 1` tokens."},
      {"model.vocab",
       "`chars`: the sorted distinct bytes of the text file (65 for Tiny Shakespeare). `bytes`: all 256 "
       "byte values. An integer: the vocabulary size of a token file (`data.format: tokens`)."},
      {"model.activation", "mlp only (gpt always uses GELU, the tanh approximation)."},
      {"model.input_size", "mlp only: width of the token embedding; 0 means `hidden_size`."},
      {"model.output_size", "mlp only: classes of the head; 0 means the vocabulary size."},
      {"model.init_std",
       "gpt and llama: weights and embeddings are drawn from N(0, init_std); gpt's residual projections use "
       "`init_std / sqrt(2 * num_layers)` (llama's do not, as transformers initialises it). Every layout starts from the same weights (seeded by "
       "`train.seed` and the parameter's name)."},

      {"parallel.tensor_model_parallel_size",
       "tp: ranks that split each layer (attention heads, MLP, vocabulary and loss), Megatron-style."},
      {"parallel.pipeline_model_parallel_size",
       "pp: pipeline stages, each a contiguous run of layers (see `partition`). `pp * virtual_stages` "
       "must not exceed `num_layers + 2`."},
      {"parallel.data_parallel_size",
       "dp: model replicas that average gradients. `auto` (or null) = `world / (tp * pp)`; an explicit "
       "value must equal that."},
      {"parallel.schedule",
       "Pipeline schedule (pp > 1). `gpipe`: all forwards, then all backwards. `1f1b`: the same bubble "
       "with at most pp microbatches in flight. `interleaved`: 1F1B over `virtual_stages` chunks per rank, "
       "a smaller bubble; needs `virtual_stages > 1`, pp > 1 and microbatches divisible by pp."},
      {"parallel.virtual_stages",
       "Model chunks per pipeline rank (v); rank s holds global stages s, s + pp, ... Must be 1 unless "
       "`schedule: interleaved`."},
      {"parallel.partition",
       "Layers per global stage (`pp * virtual_stages` entries summing to `num_layers + 2`; the embedding "
       "and the head count as one layer each). `auto`: the stage balancer splits the forward + backward "
       "FLOPs evenly. The start-up banner prints the split."},
      {"parallel.recompute",
       "`selective`: transformer blocks drop the attention probabilities after forward and recompute them "
       "in backward (gpt only). `full`: each pipeline chunk keeps only its input per microbatch and reruns "
       "its forward before its backward (done by the pipeline executor). Same losses, less memory."},
      {"parallel.sequence_parallel",
       "With tp > 1: the LayerNorm and residual activations keep only this rank's 1/tp of the token rows; "
       "tp regions are entered by an all-gather and left by a reduce-scatter. Needs tp to divide "
       "`seq_length`."},
      {"parallel.zero_stage",
       "`1`: ZeRO-1, the AdamW moments sharded over the dp ranks (reduce-scatter of gradients, all-gather "
       "of parameters). `2`: gradients sharded too (each layer's reduce-scattered during every microbatch's "
       "backward). `3`: parameters sharded too, each layer gathered before its forward and its backward "
       "(docs/zero.md)."},
      {"parallel.zero_prefetch",
       "ZeRO-3: how many units (layers) are gathered ahead of the one computing; each costs one full unit of "
       "memory in the compute precision (the planner counts `zero_prefetch + 1` units). 0 gathers on demand."},
      {"parallel.memory_cap_mib",
       "Per-rank memory cap in MiB, checked at start-up by the planner's memory model for this layout "
       "(parameters, gradients, optimizer state, gathered ZeRO-3 units, activations): a layout over it is "
       "refused with one line before any rank allocates. 0: no check (docs/zero.md)."},
      {"parallel.bucket_mb",
       "Data-parallel gradient all-reduce bucket size in MiB; buckets are launched during the last "
       "microbatch's backward as soon as they are full (dp > 1, `zero_stage: 0`)."},
      {"parallel.data_parallel_sync",
       "How dp replicas agree. `allreduce`: gradients averaged every step. `local_sgd`: each replica "
       "takes `sync_interval` AdamW steps on its own batches, then the replicas' parameters are averaged. "
       "`diloco`: the same, but the averaged parameter change is the gradient of an outer Nesterov SGD "
       "step (`outer_lr`, `outer_momentum`). Each replica keeps its own AdamW state; with `zero_stage: 1` "
       "the outer state is sharded over dp. Communicates about `sync_interval` times less than "
       "`allreduce`."},
      {"parallel.sync_interval",
       "H: inner steps between two syncs of the same fragment (`local_sgd`, `diloco`)."},
      {"parallel.outer_lr", "DiLoCo's outer learning rate (0.7 in the paper)."},
      {"parallel.outer_momentum", "DiLoCo's outer momentum (0.9 in the paper); 0: plain outer SGD."},
      {"parallel.outer_nesterov", "DiLoCo's outer step uses Nesterov momentum (PyTorch SGD's form)."},
      {"parallel.outer_fragments",
       "Streaming DiLoCo: the transformer blocks split into this many fragments (it must divide "
       "`model.num_layers`; the embedding joins the first, the head the last), each synced every "
       "`sync_interval` steps at a staggered step, so the link carries one fragment at a time."},
      {"parallel.outer_delay",
       "tau: a fragment's reduction runs in the background (non-blocking MPI) while this many inner "
       "steps continue, and is applied after them (0: applied at once). Must be less than "
       "`sync_interval`."},
      {"parallel.outer_dtype",
       "`bf16`: the outer deltas travel (and are summed) in bfloat16, half the bytes of `fp32`."},
      {"parallel.timeout_s",
       "Seconds any single communication may wait; then the job ends with a message naming the operation, "
       "the group, the step and the missing peer."},

      {"train.micro_batch_size", "Samples per microbatch on one rank."},
      {"train.global_batch_size",
       "Samples per optimizer step over all dp ranks. Each rank runs `global_batch_size / "
       "(micro_batch_size * dp)` microbatches per step and accumulates their gradients."},
      {"train.max_steps", "Optimizer steps to train; a resumed run continues up to `max_steps`."},
      {"train.seed",
       "Seeds the initial weights and the batches. Batches depend only on (seed, step, sample index), "
       "never on the layout."},
      {"parallel.grad_reduce_dtype",
       "Data-parallel gradient reduction in `fp32` (default) or `bf16`: half the bytes, every partial sum "
       "rounded to bf16 (docs/precision.md)."},
      {"train.precision",
       "GEMM input precision: `bf16` and `fp16` keep fp32 master weights, optimizer state, norms, softmax and the "
       "loss, and feed the GEMMs low-precision copies; `fp16` adds dynamic loss scaling (docs/precision.md)."},
      {"train.gemm", "CPU GEMM library: `onednn` (fp32, bf16) or `eigen` (the fp32 reference)."},
      {"train.device",
       "Where training runs: `cpu`, or `cuda` (one GPU per rank, the node-local rank's; needs a CUDA build, "
       "fp32 or bf16). See docs/cuda.md."},
      {"train.allow_tf32", "With `device: cuda`: fp32 GEMMs on TF32 tensor cores (inputs rounded to 10 mantissa bits)."},
      {"train.initial_loss_scale", "fp16 only: the dynamic loss scale's start (halved on overflow)."},
      {"train.loss_scale_window", "fp16 only: overflow-free steps after which the loss scale doubles."},
      {"train.min_loss_scale", "fp16 only: the floor of the loss scale."},
      {"train.on_nan",
       "A step whose loss or gradient norm is NaN/Inf: `abort` ends the job with one line naming the step; "
       "`skip` drops that update and counts it (`| skipped N` in the step line)."},
      {"train.threads", "OpenMP threads per rank; 0: the node's cores divided by its ranks (at least 1)."},
      {"train.eval_interval", "Validation every this many steps and at the last step; 0 disables it."},
      {"train.eval_iters",
       "Validation global batches: the same fixed samples every time and for every layout."},
      {"train.peak_tflops",
       "Per-rank peak for the MFU column; 0 measures the machine's fp32 GEMM speed at start-up."},
      {"train.optimizer.name", "The only optimizer."},
      {"train.optimizer.lr", "Peak learning rate, reached after a linear warm-up."},
      {"train.optimizer.min_lr", "Learning rate at the end of the cosine decay; at most `lr`."},
      {"train.optimizer.warmup_steps", "Steps of linear warm-up to `lr`."},
      {"train.optimizer.decay_steps",
       "Step at which the cosine reaches `min_lr` (0: `train.max_steps`); 0 or at least `warmup_steps`."},
      {"train.optimizer.betas", "Adam's decay rates `[beta1, beta2]`, each in [0, 1)."},
      {"train.optimizer.eps", "Adam's epsilon."},
      {"train.optimizer.weight_decay",
       "Decoupled weight decay, applied to weight matrices and embeddings only (not to biases or "
       "LayerNorms), as in nanoGPT."},
      {"train.optimizer.grad_clip",
       "Clip the global gradient L2 norm to this; <= 0 disables clipping. The logged `gnorm` is the norm "
       "before clipping."},

      {"data.path", "The training data, relative to the directory `tessera` runs in."},
      {"data.format",
       "`text`: a text file encoded with `model.vocab: chars` or `bytes`. `tokens`: an llm.c `.bin` token "
       "file (256 x int32 header, then uint16 ids), with an integer `model.vocab` of at most 65536."},
      {"data.val_fraction",
       "The last `val_fraction` of the tokens is the validation split, the rest the training split; "
       "must be > 0 when validation runs without `val_path`."},
      {"data.tokenizer",
       "The SentencePiece `.model` the token files were made with (`format: tokens` only; `tessera tokenize` "
       "writes one): its size must equal `model.vocab`. `generate` encodes prompts and decodes with it, and "
       "`export --hf` ships it as the model's tokenizer."},
      {"data.val_path", "A separate validation token file (`format: tokens` only); then `path` trains in full."},

      {"checkpoint.dir",
       "Checkpoint directory: one `step_<N>/` per checkpoint and a `latest` file naming the newest. "
       "Null: nothing is saved or resumed."},
      {"checkpoint.interval",
       "Save every `interval` steps and at the last step; 0: only when stopped by SIGUSR1 or SIGTERM. "
       "Must be 0 without `dir`."},
      {"checkpoint.keep", "Complete checkpoints kept in `dir` after each save; older ones are removed."},
      {"checkpoint.resume",
       "`auto`: load the newest complete checkpoint in `dir`, whatever layout saved it, and continue from "
       "its step (from step 0 when there is none). `tessera train --resume` sets it."},

      {"init.from",
       "Fine-tuning: start at step 0, with a fresh optimizer, from the weights (and pruning masks) of this "
       "checkpoint (a step directory, or a checkpoint directory for its newest), under any layout. When "
       "`checkpoint.resume: auto` finds a checkpoint in `checkpoint.dir`, the resume wins."},

      {"prune.target_sparsity",
       "Gradual magnitude pruning during training (Zhu & Gupta 2017): the fraction of the linear layers' "
       "weights pruned from `end_step` on. 0: off. See "
       "[compression.md](compression.md#gradual-pruning-during-training)."},
      {"prune.start_step",
       "Steps done when the schedule starts (sparsity 0 there). From then the sparsity follows "
       "`s_t = target_sparsity * (1 - (1 - (t - start_step) / (end_step - start_step))^3)`."},
      {"prune.end_step", "Steps done at the last re-pruning, where the sparsity reaches `target_sparsity`; "
                         "greater than `start_step` by a multiple of `interval`."},
      {"prune.interval",
       "Steps between re-prunings: after step `start_step + j * interval` the masks are recomputed from the "
       "weights' magnitudes and the pruned weights zeroed; pruned weights stay 0 in between."},
      {"prune.scope",
       "`global`: one magnitude threshold over all prunable weights together (exactly `round(s_t * n)` "
       "pruned); `layer`: `round(s_t * n_t)` of every tensor."},

      {"log.interval",
       "Rank 0 prints a step line at step 1, every `interval` steps, at the last step and whenever "
       "validation runs."},
      {"log.metrics",
       "JSONL file written by rank 0: one object per logged step (`step`, `loss`, `lr`, `grad_norm`, "
       "`step_ms`, `tokens_per_s`, `mfu`, `mem_bytes`, `val_loss`, `host_waits` on a GPU, ...). A resumed "
       "run appends to it; `scripts/plot_metrics.py` plots it."},
      {"log.trace",
       "Chrome/Perfetto trace of steps 2-11, one row per rank (forward, backward, sends, waits, gradient "
       "sync, optimizer); `scripts/plot_trace.py` renders it."},
      {"log.level",
       "Console log level; the start-up, step and checkpoint lines are `info`. Errors are always printed."},
  };
  return table;
}

std::string section_of(const std::string& key) { return key.substr(0, key.rfind('.')); }

// Markdown tables split cells at '|', even inside code spans.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// A default value as YAML would be written: bare scalars, [a, b] lists, null.
std::string yaml_text(const ConfigNode& n) {
  switch (n.kind) {
    case ConfigNode::Kind::Null: return "null";
    case ConfigNode::Kind::Scalar: return n.text.empty() ? "''" : n.text;
    case ConfigNode::Kind::Sequence: {
      std::vector<std::string> items;
      for (const auto& item : n.items) items.push_back(yaml_text(item));
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
    case ConfigNode::Kind::Map: break;
  }
  return describe(n);
}

}  // namespace

std::string reference_markdown() {
  const Config defaults;
  std::string out;
  std::string section;
  for (const Field& f : schema()) {
    if (section_of(f.key) != section) {
      section = section_of(f.key);
      out += fmt::format("{}### `{}`\n\n| key | type | default | rule | meaning |\n|---|---|---|---|---|\n",
                         out.empty() ? "" : "\n", section);
    }
    const auto meaning = meanings().find(f.key);
    out += fmt::format("| `{}` | {} | `{}` | {} | {} |\n", f.key.substr(section.size() + 1), cell(f.type),
                       cell(yaml_text(f.write(defaults))), cell(f.rule),
                       meaning == meanings().end() ? "" : cell(meaning->second));
  }
  return out;
}

std::vector<std::string> undocumented_keys() {
  std::vector<std::string> out;
  for (const Field& f : schema()) {
    if (!meanings().contains(f.key) || f.type.empty()) out.push_back(f.key);
  }
  return out;
}

std::vector<std::string> stale_descriptions() {
  std::vector<std::string> out;
  for (const auto& [key, text] : meanings()) {
    if (find_field(key) == nullptr) out.push_back(key);
  }
  return out;
}

}  // namespace tessera::config
