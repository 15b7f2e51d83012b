// The Trainer's training step: the microbatches' forward and backward (directly or through the
// pipeline executor), the gradients' reductions, and the optimizer step with its norm, clip and
// loss scaling. On a GPU the step's loss and gradient norm stay on the device until one read.
#include <chrono>
#include <cmath>
#include <limits>

#include "kernels/grad_clip.h"
#include "runtime/comm/agreement.h"
#include "runtime/compression/gradual_prune.h"
#include "runtime/compression/mask.h"
#include "runtime/device/device_memory.h"
#include "runtime/train/trainer.h"

namespace tessera {

using Clock = TraceRecorder::Clock;

int64_t Trainer::host_waits() const {
  const Device device = compute_->device();
  return device.is_cpu() ? 0 : device_memory(device)->host_waits();
}

void Trainer::on_layer_gradients_final(int layer) {
  if (zero_units_) return;  // fixed up and reduce-scattered per microbatch
  fix_layer_gradients(layer);
  if (grad_sync_) grad_sync_->on_layer_backward_done(layer);
}

void Trainer::fix_layer_gradients(int layer) {
  if (groups_.tp.sequence_sharded()) {
    for (Parameter* p : layers_[layer]->parameters()) {
      if (p->sequence_parallel_grad) tp_all_reduce(p->grad, ReduceOp::Sum, groups_.tp);
    }
  }
  // Pruned weights get no gradient: before the norm, the clip and the dp reduction.
  mask_gradients(layers_[layer]->parameters());
}

MicrobatchContext Trainer::train_context(int mb) {
  const TrainConfig& t = config_.train;
  const int64_t per_rank = static_cast<int64_t>(microbatches_) * t.micro_batch_size;
  const int64_t first = groups_.dp_rank * per_rank + static_cast<int64_t>(mb) * t.micro_batch_size;
  Batch batch;
  if (step_batch_ != nullptr) {
    const int64_t row = static_cast<int64_t>(mb) * t.micro_batch_size;
    batch = {step_batch_->tokens.narrow(row, t.micro_batch_size), step_batch_->targets.narrow(row, t.micro_batch_size)};
  } else {
    const BatchRequest request{Split::Train, step_,           first,           t.micro_batch_size,
                               config_.model.seq_length, groups_.dp_rank, groups_.dp_size, mb};
    batch = data_->batch(request);
    check_batch(batch, request, vocab_.size());
  }
  MicrobatchContext ctx = make_context(mb, batch, true);
  // The step's loss is the mean over all microbatches of all replicas (times the fp16 loss scale,
  // divided out of the gradients before clipping).
  // [outer sync hook] With local_sgd / diloco each replica's gradient is the mean over its own batch.
  ctx.loss_scale = 1.f / static_cast<float>(microbatches_ * (outer_sync_ ? 1 : groups_.dp_size));
  if (loss_scaler_) ctx.loss_scale *= static_cast<float>(loss_scaler_->scale());
  return ctx;
}

MicrobatchContext Trainer::make_context(int microbatch, const Batch& batch, bool training) {
  MicrobatchContext ctx;
  ctx.compute = compute_.get();
  ctx.microbatch = microbatch;
  ctx.tokens = to_device(batch.tokens, compute_->device());
  ctx.targets = to_device(batch.targets, compute_->device());
  ctx.training = training;
  return ctx;
}

std::vector<Tensor> Trainer::run_microbatches() {
  const auto make_ctx = [this](int mb) { return train_context(mb); };
  if (uses_executor()) {
    std::vector<Tensor> losses =
        executor_->run(schedule_, make_ctx, config_.train.micro_batch_size, config_.model.seq_length);
    // The pipeline flushes before any gradient is final; then every layer is.
    for (int l = static_cast<int>(layers_.size()) - 1; l >= 0; --l) on_layer_gradients_final(l);
    return losses;
  }
  Model& model = *chunks_.front();
  std::vector<Tensor> losses;
  for (int mb = 0; mb < microbatches_; ++mb) {
    const MicrobatchContext ctx = make_ctx(mb);
    auto start = Clock::now();
    losses.push_back(model.forward(Tensor(), ctx));
    if (trace_) trace_->add("forward", "compute", start, Clock::now(), mb, 0);
    start = Clock::now();
    // Gradients are final only in the last microbatch: that is when buckets can be sent.
    if (mb + 1 == microbatches_) {
      model.backward(Tensor(), ctx, [this](int layer) { on_layer_gradients_final(layer); });
    } else {
      model.backward(Tensor(), ctx);
    }
    if (trace_) trace_->add("backward", "compute", start, Clock::now(), mb, 0);
  }
  return losses;
}

Tensor Trainer::step_loss(const std::vector<Tensor>& losses) {
  // In microbatch order, in fp32 on the compute device; the stages without losses add 0 over pp.
  Tensor loss = compute_->full({1}, 0.f);
  for (const Tensor& l : losses) compute_->ops().accumulate(loss, l);
  compute_->ops().scale(loss, 1.f / static_cast<float>(microbatches_));
  if (groups_.pp != nullptr && groups_.pp->size() > 1) groups_.pp->all_reduce(loss, ReduceOp::Sum);
  // [outer sync hook] Replicas do not talk between syncs: fit() averages the loss when it logs.
  if (!outer_sync_ && groups_.dp != nullptr && groups_.dp->size() > 1) groups_.dp->all_reduce(loss, ReduceOp::Avg);
  return loss;
}


StepResult Trainer::train_step() {
  accumulate_gradients();
  return optimizer_step();
}

double Trainer::forward_backward(const Batch& batch) {
  const TrainConfig& t = config_.train;
  const Shape want{static_cast<int64_t>(microbatches_) * t.micro_batch_size, config_.model.seq_length};
  for (const Tensor* x : {&batch.tokens, &batch.targets}) {
    TESSERA_REQUIRE(x->defined() && x->dtype() == DType::I32 && x->shape() == want,
                    "Trainer::forward_backward: the batch must be I32 tokens and targets of shape {} (microbatches "
                    "per rank {} x micro_batch_size {}, seq_length), got {}", shape_string(want), microbatches_,
                    t.micro_batch_size, x->defined() ? shape_string(x->shape()) : "none");
  }
  const BatchRequest request{Split::Train, step_, 0, want[0], want[1], groups_.dp_rank, groups_.dp_size, 0};
  check_batch(batch, request, vocab_.size());
  step_batch_ = &batch;
  double loss = 0;
  try {
    loss = forward_backward();
  } catch (...) {
    step_batch_ = nullptr;
    throw;
  }
  step_batch_ = nullptr;
  return loss;
}

double Trainer::forward_backward() {
  accumulate_gradients();
  return to_device(*pending_loss_, Device::cpu()).f32()[0];  // read now: the caller asked for it
}

void Trainer::accumulate_gradients() {
  step_start_ = Clock::now();
  host_waits_at_step_start_ = host_waits();
  for (Communicator* c : {groups_.world, groups_.dp, groups_.tp.comm, groups_.pp}) {
    if (c != nullptr) c->set_step(step_);
  }
  if (trace_) {
    const int64_t run_step = step_ - first_step_;
    trace_->set_step(step_, run_step >= kTraceFirstStep && run_step < kTraceFirstStep + kTraceSteps);
  }
  if (data_parallel()) dp_traffic_at_step_start_ = dp_link().traffic();
  for (auto& m : chunks_) m->zero_grad();
  if (zero_units_) zero_units_->begin_step();
  // The masters may have changed since the last step (update, load, pruning): low-precision
  // copies are remade on first use.
  compute_->invalidate_weight_copies();
  tp_comm_.seconds = 0;
  const std::vector<Tensor> losses = run_microbatches();
  const auto start = Clock::now();
  if (grad_sync_) grad_sync_->finish();
  if (zero_units_) zero_units_->finish();
  if (tied_blocks_ && tied_blocks_->table() != nullptr) {
    Tensor block = zero_units_->block_grad_of(tied_blocks_->table());
    tied_blocks_->reduce(block);
  }
  trace("grad_sync", start);
  pending_loss_ = step_loss(losses);
}

StepResult Trainer::optimizer_step() {
  TESSERA_CHECK(pending_loss_.has_value(), "optimizer_step without a forward_backward for step {}", step_ + 1);
  const TrainConfig& t = config_.train;
  StepResult r;
  r.lr = learning_rate(t.optimizer, step_, t.max_steps);
  const auto start = Clock::now();
  const bool overflow = loss_scaler_ && unscale_gradients();
  // The loss and the squared gradient norm, both reduced over every rank that holds them so all
  // ranks agree, read back together: the step's one host wait on a GPU.
  std::vector<Tensor> scalars{*pending_loss_};
  pending_loss_.reset();
  if (!overflow) scalars.push_back(optimizer_->squared_grad_norm(groups_.tp, groups_.pp));
  std::vector<Tensor> host;
  for (size_t i = 0; i < scalars.size(); ++i) host.push_back(Tensor::empty({1}));
  read_to_host(scalars, host);
  r.loss = host[0].f32()[0];
  r.grad_norm = overflow ? std::numeric_limits<double>::infinity() : std::sqrt(static_cast<double>(host[1].f32()[0]));
  const float clip = overflow ? 1.f : kernels::cpu::clip_coefficient(r.grad_norm, static_cast<float>(t.optimizer.grad_clip));
  if (loss_scaler_ && loss_scaler_->update(overflow, step_ + 1)) {
    // fp16 overflow: an expected event under dynamic loss scaling, not train.on_nan's business.
    r.skipped = true;
    ++skipped_steps_;
  } else if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    // Both values are reduced over every rank, so every rank stops here together: an agreed
    // error, printed once for the job, not once per rank.
    if (t.on_nan != "skip") {
      throw AgreedError(fmt::format("step {}: the loss ({}) or the gradient norm ({}) is not finite; stopping "
                                    "(train.on_nan = abort; `skip` drops such steps' updates instead)",
                                    step_ + 1, r.loss, r.grad_norm));
    }
    r.skipped = true;
    ++skipped_steps_;
  } else {
    optimizer_->step(r.lr, clip);
  }
  trace("optimizer", start);
  ++step_;
  if (outer_sync_) {
    // [outer sync hook] Launches and applies the outer syncs due after this inner step.
    const auto sync_start = Clock::now();
    outer_sync_->after_inner_step(step_);
    trace("outer_sync", sync_start);
    r.dp_bytes = outer_sync_->stats().bytes;
    r.dp_wait_ms = outer_sync_->stats().wait_ms;
  }
  // After the outer sync, so the traffic line at the end of the run counts its collectives too.
  CommTraffic step_traffic;
  if (data_parallel()) {
    const CommTraffic now = dp_link().traffic(), &then = dp_traffic_at_step_start_;
    step_traffic = {now.all_reduce - then.all_reduce, now.all_gather - then.all_gather,
                    now.reduce_scatter - then.reduce_scatter};
    dp_traffic_.all_reduce += step_traffic.all_reduce;
    dp_traffic_.all_gather += step_traffic.all_gather;
    dp_traffic_.reduce_scatter += step_traffic.reduce_scatter;
    ++dp_traffic_steps_;
  }
  if (!outer_sync_ && (grad_sync_ || zero_units_)) {
    // What this step handed to the dp collectives, as a ring sends it (measured, not modelled).
    r.dp_bytes = step_traffic.ring_sent_bytes(groups_.dp_size);
    r.dp_wait_ms = grad_sync_ ? grad_sync_->stats().exposed_ms : zero_units_->exposed_ms();
  }
  if (is_prune_step(config_.prune, step_)) {
    // After the update, so the step's checkpoint holds the new masks and a resume continues
    // the schedule from them.
    const double s = scheduled_sparsity(config_.prune, step_);
    const GatheredParameters gathered(zero_units_.get(), true);  // ZeRO-3: pruning ranks every weight
    const PruneCounts c = prune_to_sparsity(parameters(), s, config_.prune.scope == "global",
                                            vocab_padded_rows(config_.model, graph_),
                                            {groups_.tp.comm, groups_.tp.rank, groups_.tp.size, groups_.pp});
    message(LogLevel::Info, fmt::format("prune: step {}, {} of {} weights pruned ({:.2f}%, schedule {:.2f}%, scope {})",
                                        step_, c.pruned, c.total, 100.0 * c.pruned / std::max<int64_t>(c.total, 1),
                                        100.0 * s, config_.prune.scope));
  }
  r.step = step_;
  if (loss_scaler_) r.loss_scale = loss_scaler_->scale();
  r.step_ms = std::chrono::duration<double, std::milli>(Clock::now() - step_start_).count();
  r.tp_comm_ms = tp_comm_.seconds * 1e3;
  r.host_waits = host_waits() - host_waits_at_step_start_;
  if (options_.callbacks.on_step) options_.callbacks.on_step(r);
  return r;
}

bool Trainer::unscale_gradients() {
  const bool finite = optimizer_->scale_gradients(static_cast<float>(1.0 / loss_scaler_->scale()));
  return all_reduce_scalar(finite ? 0.0 : 1.0, groups_.world, ReduceOp::Max) > 0;
}

}  // namespace tessera
