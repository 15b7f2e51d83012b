// The training loop.
#include "runtime/train/trainer.h"


#include <chrono>
#include <spdlog/spdlog.h>

#include "runtime/train/grad_norm.h"
#include "runtime/train/gemm_roof.h"

namespace tessera {
Trainer::Trainer(const Config& config, const Dataset& data, ParallelGroups groups)
    : config_(config),
      data_(data),
      groups_(groups),
      graph_(build_layer_graph(config.model, data.vocab.size(), config.train.micro_batch_size)),
      train_sampler_(&data.train, config.model.seq_length, config.train.seed) {
  if (!data.val.empty()) val_sampler_.emplace(&data.val, config.model.seq_length, config.train.seed, kValStream);
  const TrainConfig& t = config_.train;
  TESSERA_CHECK(t.global_batch_size % (t.micro_batch_size * groups_.dp_size) == 0,
                "global batch {} not divisible by micro batch {} x dp {}", t.global_batch_size,
                t.micro_batch_size, groups_.dp_size);
  microbatches_ = t.global_batch_size / (t.micro_batch_size * groups_.dp_size);
  model_ = std::make_unique<Model>(config_.model, graph_, groups_.tp, t.seed);
  const ParallelConfig& par = config_.parallel;
  if (data_parallel()) {
    flat_ = std::make_unique<FlatParameters>(*model_, groups_.dp_size);
    grad_sync_ = std::make_unique<GradientSync>(*flat_, *groups_.dp, par.bucket_mb * (1 << 20), par.zero_stage);
  }
  if (data_parallel() && par.zero_stage == 1) {
    zero_optimizer_ = std::make_unique<ZeroAdamW>(*flat_, *groups_.dp, t.optimizer);
  } else {
    optimizer_ = std::make_unique<AdamW>(model_->parameters(), t.optimizer);
  }
  peak_flops_ = t.peak_tflops > 0 ? t.peak_tflops * 1e12 : measure_gemm_flops();
}

double Trainer::all_reduce_scalar(double value, Communicator* comm, ReduceOp op) {
  if (comm == nullptr || comm->size() == 1) return value;
  // Reduced in fp32 tensors like every other collective; the values here are O(1).
  Tensor t = Tensor::full({1}, static_cast<float>(value));
  comm->all_reduce(t, op);
  return t.f32()[0];
}

int64_t Trainer::optimizer_state_bytes() const {
  return zero_optimizer_ ? zero_optimizer_->state_bytes() : optimizer_->state_bytes();
}

void Trainer::on_layer_gradients_final(int layer) {
  if (groups_.tp.sequence_sharded()) {
    for (Parameter* p : model_->layers()[layer]->parameters()) {
      if (p->sequence_parallel_grad) groups_.tp.comm->all_reduce(p->grad, ReduceOp::Sum);
    }
  }
  if (grad_sync_) grad_sync_->on_layer_backward_done(layer);
}

StepResult Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainConfig& t = config_.train;
  for (Communicator* c : {groups_.world, groups_.dp, groups_.tp.comm}) {
    if (c != nullptr) c->set_step(step_);
  }
  model_->zero_grad();
  const int64_t per_rank = static_cast<int64_t>(microbatches_) * t.micro_batch_size;
  double loss_sum = 0;
  for (int mb = 0; mb < microbatches_; ++mb) {
    const int64_t first = groups_.dp_rank * per_rank + static_cast<int64_t>(mb) * t.micro_batch_size;
    Batch batch = train_sampler_.sample(step_, first, t.micro_batch_size);
    MicrobatchContext ctx;
    ctx.microbatch = mb;
    ctx.tokens = batch.tokens;
    ctx.targets = batch.targets;
    ctx.loss_scale = 1.f / static_cast<float>(microbatches_ * groups_.dp_size);
    const Tensor loss = model_->forward(Tensor(), ctx);
    loss_sum += loss.f32()[0];
    // Gradients are final only in the last microbatch: that is when buckets can be sent.
    const bool last = mb + 1 == microbatches_;
    if (last) {
      model_->backward(Tensor(), ctx, [this](int layer) { on_layer_gradients_final(layer); });
    } else {
      model_->backward(Tensor(), ctx);
    }
  }
  // Each rank's gradients are scaled by 1 / (microbatches x dp), so the sum is the mean.
  if (grad_sync_) grad_sync_->finish();
  StepResult r;
  r.loss = all_reduce_scalar(loss_sum / microbatches_, groups_.dp, ReduceOp::Avg);
  r.lr = learning_rate(t.optimizer, step_, t.max_steps);
  if (zero_optimizer_) {
    r.grad_norm = zero_optimizer_->clip(grad_sync_->shard_grads(), t.optimizer.grad_clip, groups_.tp);
    zero_optimizer_->step(grad_sync_->shard_grads(), r.lr);
  } else {
    r.grad_norm = clip_grad_norm(model_->parameters(), t.optimizer.grad_clip, groups_.tp);
    optimizer_->step(r.lr);
  }
  ++step_;
  r.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

double Trainer::evaluate() {
  TESSERA_CHECK(val_sampler_.has_value(), "no validation split to evaluate on");
  const TrainConfig& t = config_.train;
  double sum = 0;
  for (int i = groups_.dp_rank; i < t.eval_iters; i += groups_.dp_size) {
    Batch batch = val_sampler_->sample(0, static_cast<int64_t>(i) * t.micro_batch_size, t.micro_batch_size);
    MicrobatchContext ctx;
    ctx.tokens = batch.tokens;
    ctx.targets = batch.targets;
    ctx.training = false;
    sum += model_->forward(Tensor(), ctx).f32()[0];
  }
  return all_reduce_scalar(sum, groups_.dp, ReduceOp::Sum) / t.eval_iters;
}

void Trainer::fit() {
  const TrainConfig& t = config_.train;
  std::unique_ptr<MetricsWriter> metrics;
  const bool logging = groups_.is_logging_rank();
  if (logging && !config_.log.metrics.empty()) metrics = std::make_unique<MetricsWriter>(config_.log.metrics);
  const double tokens_per_step = static_cast<double>(t.global_batch_size) * config_.model.seq_length;
  const double flops_per_step = graph_.flops_per_token() * tokens_per_step;
  const int world = groups_.world ? groups_.world->size() : 1;
  if (logging) {
    spdlog::info("model: {} layers, {:.2f}M parameters, {:.1f} MFLOP per token; peak {:.1f} GFLOP/s per rank x {} ranks",
                 graph_.layers.size(), graph_.total_params() / 1e6, graph_.flops_per_token() / 1e6,
                 peak_flops_ / 1e9, world);
    spdlog::info("optimizer state: {:.2f} MiB per rank{}", optimizer_state_bytes() / 1048576.0,
                 zero_optimizer_ ? fmt::format(" (ZeRO-1 sharded over dp {})", groups_.dp_size) : "");
  }
  double window_ms = 0, window_exposed_ms = 0, window_span_ms = 0;
  int window_steps = 0;
  while (step_ < t.max_steps) {
    const StepResult r = train_step();
    window_ms += r.step_ms;
    window_exposed_ms += grad_sync_stats().exposed_ms;
    window_span_ms += grad_sync_stats().comm_span_ms;
    ++window_steps;
    const bool eval_now = t.eval_interval > 0 && (step_ % t.eval_interval == 0 || step_ == t.max_steps);
    const bool log_now = step_ % config_.log.interval == 0 || step_ == t.max_steps || step_ == 1;
    std::optional<double> val;
    if (eval_now && val_sampler_) val = evaluate();
    if (!(log_now || val)) continue;
    StepMetrics m;
    m.step = step_;
    m.max_steps = t.max_steps;
    m.loss = r.loss;
    m.lr = r.lr;
    m.grad_norm = r.grad_norm;
    m.step_ms = window_ms / window_steps;
    m.tokens_per_s = tokens_per_step / (m.step_ms / 1e3);
    m.mfu = flops_per_step / (m.step_ms / 1e3) / (peak_flops_ * world);
    m.mem_bytes = host_memory_stats().peak_bytes;
    m.val_loss = val;
    if (grad_sync_) {
      m.grad_comm_exposed_ms = window_exposed_ms / window_steps;
      m.grad_comm_span_ms = window_span_ms / window_steps;
    }
    window_ms = window_exposed_ms = window_span_ms = 0;
    window_steps = 0;
    if (!logging) continue;
    spdlog::info("{}", format_step_line(m));
    if (metrics) metrics->write(m);
  }
}

}  // namespace tessera
