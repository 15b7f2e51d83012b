// The training loop.
#include "runtime/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <spdlog/spdlog.h>

#include "partitioner/stage_balancer.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/compression/gradual_prune.h"
#include "runtime/compression/mask.h"
#include "runtime/comm/agreement.h"
#include "runtime/comm/parallel_grid.h"
#include "kernels/residual.h"
#include "runtime/train/gemm_roof.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/outer_checkpoint.h"

namespace tessera {
namespace {

using Clock = TraceRecorder::Clock;

// Steps recorded in the trace: the first is skipped (allocations, first-touch), then ten.
constexpr int64_t kTraceFirstStep = 1, kTraceSteps = 10;

}  // namespace

ParallelGroups parallel_groups(ParallelGrid& grid, bool sequence_parallel) {
  ParallelGroups g;
  g.world = &grid.world();
  g.tp = TpGroup{&grid.tp(), grid.tp_rank(), grid.tp_size(), sequence_parallel};
  g.dp = &grid.dp();
  g.dp_rank = grid.dp_rank();
  g.dp_size = grid.dp_size();
  g.pp = &grid.pp();
  g.pp_rank = grid.pp_rank();
  g.pp_size = grid.pp_size();
  return g;
}

std::vector<int> stage_partition(const ParallelConfig& p, const LayerGraph& graph) {
  if (!p.partition.empty()) {
    // Checked against the graph, which holds the embedding program's custom layers too.
    const int stages = p.pipeline_model_parallel_size * p.virtual_stages;
    TESSERA_REQUIRE(static_cast<int>(p.partition.size()) == stages,
                    "parallel.partition = [{}]: must have pipeline_model_parallel_size * virtual_stages = {} entries",
                    fmt::join(p.partition, ", "), stages);
    const int custom = static_cast<int>(std::count_if(graph.layers.begin(), graph.layers.end(),
                                                      [](const LayerSpec& l) { return l.kind == LayerKind::Custom; }));
    TESSERA_REQUIRE(std::accumulate(p.partition.begin(), p.partition.end(), 0) == static_cast<int>(graph.layers.size()),
                    "parallel.partition = [{}]: must add up to the {} layers of the layer graph (num_layers + "
                    "embedding + head + {} custom layers)", fmt::join(p.partition, ", "), graph.layers.size(), custom);
    return p.partition;
  }
  // auto: the partitioner's balancer over per-layer FLOPs. A layer without GEMMs (the
  // embedding) still costs a little, so it is not treated as free.
  BalanceProblem problem;
  problem.stages = p.pipeline_model_parallel_size;
  problem.virtual_stages = p.virtual_stages;
  double total = 0;
  for (const LayerSpec& l : graph.layers) total += l.forward_flops + l.backward_flops;
  for (const LayerSpec& l : graph.layers) {
    problem.layer_cost.push_back(l.forward_flops + l.backward_flops + 0.01 * total / graph.layers.size());
  }
  const BalanceResult r = balance_stages(problem);
  TESSERA_REQUIRE(r.feasible, "parallel.partition auto: {}", r.reason);
  return r.counts;
}

Trainer::Trainer(const Config& config, const Dataset& data, ParallelGroups groups, TrainerOptions options)
    : Trainer(config, std::make_unique<DatasetSource>(data, config.model.seq_length, config.train.seed), nullptr,
              groups, std::move(options)) {}

Trainer::Trainer(const Config& config, DataSource& data, ParallelGroups groups, TrainerOptions options)
    : Trainer(config, nullptr, &data, groups, std::move(options)) {}

Trainer::Trainer(const Config& config, std::unique_ptr<DataSource> owned, DataSource* data, ParallelGroups groups,
                 TrainerOptions options)
    : config_(config),
      options_(std::move(options)),
      owned_data_(std::move(owned)),
      data_(data != nullptr ? data : owned_data_.get()),
      vocab_(data_->vocabulary()),
      groups_(groups),
      graph_(build_layer_graph(config.model, vocab_.size(), config.train.micro_batch_size, options_.custom_layers)) {
  const TrainConfig& t = config_.train;
  const ParallelConfig& par = config_.parallel;
  groups_.tp.stats = &tp_comm_;
  compute_ = make_cpu_compute(parse_precision(t.precision), t.gemm);
  if (compute_->policy().loss_scaling()) {
    LossScalerConfig ls;
    ls.initial_scale = t.initial_loss_scale;
    ls.growth_interval = t.loss_scale_window;
    ls.min_scale = t.min_loss_scale;
    loss_scaler_.emplace(ls);
  }
  TESSERA_CHECK(t.global_batch_size % (t.micro_batch_size * groups_.dp_size) == 0,
                "global batch {} not divisible by micro batch {} x dp {}", t.global_batch_size,
                t.micro_batch_size, groups_.dp_size);
  microbatches_ = t.global_batch_size / (t.micro_batch_size * groups_.dp_size);

  const int v = par.virtual_stages;
  TESSERA_CHECK(pipelined() || v == 1, "virtual stages need pipeline parallelism");
  const std::vector<int> counts = stage_partition(par, graph_);
  std::vector<int> first(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), first.begin() + 1);
  const bool selective = par.recompute == "selective";
  std::vector<int> graph_layer;  // of each local layer, for the outer sync's fragments
  for (int c = 0; c < v; ++c) {
    const int g = c * groups_.pp_size + groups_.pp_rank;
    chunks_.push_back(std::make_unique<Model>(config_.model, graph_, groups_.tp, t.seed, first[g], first[g + 1],
                                              selective, options_.layer_registry));
    for (int l = first[g]; l < first[g + 1]; ++l) graph_layer.push_back(l);
  }
  std::vector<Model*> chunk_ptrs;
  for (auto& m : chunks_) {
    chunk_ptrs.push_back(m.get());
    for (auto& l : m->layers()) layers_.push_back(l.get());
  }
  if (!config_.log.trace.empty()) {
    const int rank = groups_.world ? groups_.world->rank() : 0;
    trace_ = std::make_unique<TraceRecorder>(
        rank, fmt::format("rank {} (dp {}, tp {}, pp {})", rank, groups_.dp_rank, groups_.tp.rank, groups_.pp_rank));
  }
  if (pipelined() || par.recompute == "full") {
    PipelineLayout layout{groups_.pp, groups_.pp_rank, groups_.pp_size, v, compute_->compute_dtype()};
    executor_ = std::make_unique<StageExecutor>(chunk_ptrs, layout, par.recompute == "full", trace_.get());
    schedule_ = make_schedule(parse_schedule(par.schedule), groups_.pp_rank, groups_.pp_size, microbatches_, v);
  }
  if (data_parallel() || local_sync()) flat_ = std::make_unique<FlatParameters>(chunk_ptrs, groups_.dp_size);
  if (data_parallel() && !local_sync()) {
    grad_sync_ = std::make_unique<GradientSync>(*flat_, *groups_.dp, par.bucket_mb * (1 << 20), par.zero_stage,
                                                par.grad_reduce_dtype == "bf16" ? DType::BF16 : DType::F32);
  }
  if (local_sync()) {
    // [outer sync hook] No per-step gradient sync: each replica keeps its own full AdamW below.
    outer_sync_ = std::make_unique<OuterSync>(
        *flat_, groups_.dp, outer_sync_config(par),
        outer_fragment_of_layers(graph_layer, config_.model.num_layers, par.outer_fragments));
  }
  if (grad_sync_ && par.zero_stage == 1) {
    zero_optimizer_ = std::make_unique<ZeroAdamW>(*flat_, *groups_.dp, t.optimizer);
  } else {
    optimizer_ = std::make_unique<AdamW>(parameters(), t.optimizer);
  }
  set_mfu_roof();
}

std::vector<Parameter*> Trainer::parameters() const {
  std::vector<Parameter*> ps;
  for (const auto& m : chunks_) {
    for (Parameter* p : m->parameters()) ps.push_back(p);
  }
  return ps;
}

double Trainer::all_reduce_scalar(double value, Communicator* comm, ReduceOp op) {
  if (comm == nullptr || comm->size() == 1) return value;
  // Reduced in fp32 tensors like every other collective; the values here are O(1).
  Tensor t = Tensor::full({1}, static_cast<float>(value));
  comm->all_reduce(t, op);
  return t.f32()[0];
}

int64_t Trainer::optimizer_state_bytes() const {
  return (zero_optimizer_ ? zero_optimizer_->state_bytes() : optimizer_->state_bytes()) +
         (outer_sync_ ? outer_sync_->state_bytes() : 0);
}

void Trainer::trace(const char* name, Clock::time_point start) {
  if (trace_) trace_->add(name, name, start, Clock::now());
}

void Trainer::on_layer_gradients_final(int layer) {
  if (groups_.tp.sequence_sharded()) {
    for (Parameter* p : layers_[layer]->parameters()) {
      if (p->sequence_parallel_grad) tp_all_reduce(p->grad, ReduceOp::Sum, groups_.tp);
    }
  }
  // Pruned weights get no gradient: before the norm, the clip and the dp reduction.
  mask_gradients(layers_[layer]->parameters());
  if (grad_sync_) grad_sync_->on_layer_backward_done(layer);
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
  MicrobatchContext ctx;
  ctx.compute = compute_.get();
  ctx.microbatch = mb;
  ctx.tokens = batch.tokens;
  ctx.targets = batch.targets;
  // The step's loss is the mean over all microbatches of all replicas (times the fp16 loss scale,
  // divided out of the gradients before clipping).
  // [outer sync hook] With local_sgd / diloco each replica's gradient is the mean over its own batch.
  ctx.loss_scale = 1.f / static_cast<float>(microbatches_ * (outer_sync_ ? 1 : groups_.dp_size));
  if (loss_scaler_) ctx.loss_scale *= static_cast<float>(loss_scaler_->scale());
  return ctx;
}

double Trainer::run_microbatches() {
  const auto make_ctx = [this](int mb) { return train_context(mb); };
  if (uses_executor()) {
    const double loss_sum =
        executor_->run(schedule_, make_ctx, config_.train.micro_batch_size, config_.model.seq_length);
    // The pipeline flushes before any gradient is final; then every layer is.
    for (int l = static_cast<int>(layers_.size()) - 1; l >= 0; --l) on_layer_gradients_final(l);
    return loss_sum;
  }
  Model& model = *chunks_.front();
  double loss_sum = 0;
  for (int mb = 0; mb < microbatches_; ++mb) {
    const MicrobatchContext ctx = make_ctx(mb);
    auto start = Clock::now();
    loss_sum += model.forward(Tensor(), ctx).f32()[0];
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
  return loss_sum;
}

StepResult Trainer::train_step() {
  forward_backward();
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
  try {
    forward_backward();
  } catch (...) {
    step_batch_ = nullptr;
    throw;
  }
  step_batch_ = nullptr;
  return *pending_loss_;
}

double Trainer::forward_backward() {
  step_start_ = Clock::now();
  for (Communicator* c : {groups_.world, groups_.dp, groups_.tp.comm, groups_.pp}) {
    if (c != nullptr) c->set_step(step_);
  }
  if (trace_) {
    const int64_t run_step = step_ - first_step_;
    trace_->set_step(step_, run_step >= kTraceFirstStep && run_step < kTraceFirstStep + kTraceSteps);
  }
  for (auto& m : chunks_) m->zero_grad();
  // The masters may have changed since the last step (update, load, pruning): low-precision
  // copies are remade on first use.
  compute_->invalidate_weight_copies();
  tp_comm_.seconds = 0;
  const double loss_sum = run_microbatches();
  const auto start = Clock::now();
  if (grad_sync_) grad_sync_->finish();
  trace("grad_sync", start);
  // Only the last pipeline stage has losses; the others contribute 0 to the sum over pp.
  const double replica_loss = all_reduce_scalar(loss_sum, groups_.pp, ReduceOp::Sum) / microbatches_;
  // [outer sync hook] Replicas do not talk between syncs: fit() averages the loss when it logs.
  pending_loss_ = outer_sync_ ? replica_loss : all_reduce_scalar(replica_loss, groups_.dp, ReduceOp::Avg);
  return *pending_loss_;
}

StepResult Trainer::optimizer_step() {
  TESSERA_CHECK(pending_loss_.has_value(), "optimizer_step without a forward_backward for step {}", step_ + 1);
  const TrainConfig& t = config_.train;
  StepResult r;
  r.loss = *pending_loss_;
  pending_loss_.reset();
  r.lr = learning_rate(t.optimizer, step_, t.max_steps);
  const auto start = Clock::now();
  const bool overflow = loss_scaler_ && unscale_gradients();
  // The norm is reduced over every rank that holds gradients, so all ranks agree on it.
  r.grad_norm = overflow ? std::numeric_limits<double>::infinity() : zero_optimizer_
                    ? zero_optimizer_->clip(grad_sync_->shard_grads(), t.optimizer.grad_clip, groups_.tp, groups_.pp)
                    : clip_grad_norm(parameters(), t.optimizer.grad_clip, groups_.tp, groups_.pp);
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
  } else if (zero_optimizer_) {
    zero_optimizer_->step(grad_sync_->shard_grads(), r.lr);
  } else {
    optimizer_->step(r.lr);
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
  } else if (grad_sync_) {
    r.dp_bytes = ring_all_reduce_bytes(4.0 * static_cast<double>(flat_->numel()), groups_.dp_size);
    r.dp_wait_ms = grad_sync_->stats().exposed_ms;
  }
  if (is_prune_step(config_.prune, step_)) {
    // After the update, so the step's checkpoint holds the new masks and a resume continues
    // the schedule from them.
    const double s = scheduled_sparsity(config_.prune, step_);
    const PruneCounts c = prune_to_sparsity(parameters(), s, config_.prune.scope == "global",
                                            vocab_padded_rows(config_.model, graph_),
                                            {groups_.tp.comm, groups_.tp.rank, groups_.tp.size, groups_.pp});
    if (groups_.is_logging_rank()) {
      spdlog::info("prune: step {}, {} of {} weights pruned ({:.2f}%, schedule {:.2f}%, scope {})", step_,
                   c.pruned, c.total, 100.0 * c.pruned / std::max<int64_t>(c.total, 1), 100.0 * s,
                   config_.prune.scope);
    }
  }
  r.step = step_;
  if (loss_scaler_) r.loss_scale = loss_scaler_->scale();
  r.step_ms = std::chrono::duration<double, std::milli>(Clock::now() - step_start_).count();
  r.tp_comm_ms = tp_comm_.seconds * 1e3;
  if (options_.callbacks.on_step) options_.callbacks.on_step(r);
  return r;
}

void Trainer::set_mfu_roof() {
  const TrainConfig& t = config_.train;
  const DType dtype = compute_->compute_dtype();
  Backend& ops = compute_->ops();
  const bool logging = groups_.is_logging_rank();
  if (compute_->policy().low_precision() && !ops.native_matmul(dtype) && logging) {
    spdlog::warn("train.precision = {}: this CPU has no native {} GEMM; {} emulates it ({}), slower than fp32",
                 t.precision, dtype_name(dtype), ops.name(), ops.matmul_implementation(dtype));
  }
  if (t.peak_tflops > 0) {
    peak_flops_ = t.peak_tflops * 1e12;
    if (logging) spdlog::info("MFU roof: train.peak_tflops = {} TFLOP/s per rank", t.peak_tflops);
    return;
  }
  const GemmRoof roof = measure_gemm_roof(ops, dtype);
  peak_flops_ = roof.flops;
  if (logging) {
    spdlog::info("MFU roof: {:.0f} GFLOP/s per rank, the best of 10 1024^3 {} GEMMs on {} ({}) at start-up",
                 roof.flops / 1e9, roof.dtype, ops.name(), roof.implementation);
  }
}

bool Trainer::unscale_gradients() {
  const float inverse = static_cast<float>(1.0 / loss_scaler_->scale());
  bool finite = true;
  auto unscale = [&](const Tensor& g) {
    kernels::cpu::scale(g.f32(), inverse, g.numel());
    const float* p = g.f32();
    for (int64_t i = 0; i < g.numel() && finite; ++i) finite = std::isfinite(p[i]);
  };
  if (zero_optimizer_) {
    unscale(grad_sync_->shard_grads());
  } else {
    for (Parameter* p : parameters()) unscale(p->grad);
  }
  return all_reduce_scalar(finite ? 0.0 : 1.0, groups_.world, ReduceOp::Max) > 0;
}

CheckpointState Trainer::checkpoint_state(std::vector<OptimizerMoments>& moments, Tensor& m, Tensor& v,
                                          bool gather) {
  CheckpointState s;
  s.model = config_.model;
  s.step = step_;
  s.params = parameters();
  s.padded_rows = vocab_padded_rows(config_.model, graph_);
  if (loss_scaler_) s.extra["loss_scaler"] = loss_scaler_->to_json();
  moments.assign(s.params.size(), OptimizerMoments{});
  if (zero_optimizer_) {
    if (gather) {
      zero_optimizer_->gather_moments(m, v);
    } else {
      m = Tensor::zeros({flat_->numel()});
      v = Tensor::zeros({flat_->numel()});
    }
    std::map<const Parameter*, size_t> index;
    for (size_t i = 0; i < s.params.size(); ++i) index[s.params[i]] = i;
    for (const FlatSegment& seg : flat_->segments()) {
      const Shape& shape = seg.param->value.shape();
      moments[index.at(seg.param)] = {m.narrow(seg.offset, seg.numel).view(shape),
                                      v.narrow(seg.offset, seg.numel).view(shape)};
    }
    s.optimizer_steps = zero_optimizer_->steps_taken();
  } else {
    for (size_t i = 0; i < s.params.size(); ++i) moments[i] = {optimizer_->exp_avg(i), optimizer_->exp_avg_sq(i)};
    s.optimizer_steps = optimizer_->steps_taken();
  }
  for (OptimizerMoments& mo : moments) s.moments.push_back(&mo);
  return s;
}

std::string Trainer::save() { return save(config_.checkpoint.dir); }

std::string Trainer::save(const std::string& dir) {
  TESSERA_REQUIRE(!dir.empty(), "Trainer::save: no checkpoint directory (checkpoint.dir is empty)");
  const auto start = Clock::now();
  std::vector<OptimizerMoments> moments;
  Tensor m, v;
  CheckpointState state = checkpoint_state(moments, m, v, true);
  const CheckpointLayout layout{groups_.dp_size, groups_.tp.size, groups_.pp_size, groups_.dp_rank, groups_.tp.rank,
                                groups_.pp_rank, zero_optimizer_ ? 1 : 0};
  if (outer_sync_) {
    // [outer sync hook] Each replica's own state and the outer state (outer_checkpoint.h).
    state.extra["outer_sync"] =
        outer_checkpoint_extra(config_.parallel, groups_.dp_size, outer_sync_->replicas_identical(step_));
    state.write_extra_files =
        replica_state_writer({flat_.get(), optimizer_.get(), parameters(), outer_sync_.get()}, layout);
  }
  const SaveResult r = save_checkpoint(dir, state, layout, groups_.world, options_.config_yaml, vocab_.to_json(),
                                       config_.checkpoint.keep);
  if (groups_.is_logging_rank()) {
    spdlog::info("checkpoint: step {} saved to {} ({:.1f} MiB, {:.0f} ms){}", step_, r.step_dir, r.bytes / 1048576.0,
                 std::chrono::duration<double, std::milli>(Clock::now() - start).count(),
                 r.removed.empty() ? "" : fmt::format(", removed {}", fmt::join(r.removed, ", ")));
  }
  if (options_.callbacks.on_checkpoint) options_.callbacks.on_checkpoint(step_, r.step_dir);
  return r.step_dir;
}

bool Trainer::resume() { return resume(config_.checkpoint.dir); }

bool Trainer::resume(const std::string& dir) {
  std::vector<std::string> warnings;
  std::optional<std::string> found;
  run_agreed(groups_.world, [&] { found = find_latest_checkpoint(dir, groups_.world, &warnings); });
  const bool logging = groups_.is_logging_rank();
  for (const std::string& w : warnings) {
    if (logging) spdlog::warn("checkpoint: {}", w);
  }
  if (!found) {
    if (logging) spdlog::info("checkpoint: none in {}, starting from step 0", dir);
    return false;
  }
  Manifest manifest;
  std::vector<OptimizerMoments> moments;
  Tensor m, v;
  CheckpointState state = checkpoint_state(moments, m, v, false);
  // Each rank reads the files of its own shard: a damaged one stops every rank together.
  run_agreed(groups_.world, [&] {
    manifest = read_manifest(*found);
    TESSERA_REQUIRE(manifest.vocabulary.is_null() || Vocabulary::from_json(manifest.vocabulary) == vocab_,
                    "{}: the checkpoint's vocabulary ({} entries) is not the vocabulary of {} ({} entries)", *found,
                    Vocabulary::from_json(manifest.vocabulary).size(), config_.data.path, vocab_.size());
    load_checkpoint(*found, state, groups_.tp.rank, groups_.tp.size);
  });
  if (zero_optimizer_) {
    zero_optimizer_->scatter_moments(m, v);
    zero_optimizer_->set_steps_taken(state.optimizer_steps);
  } else {
    optimizer_->set_steps_taken(state.optimizer_steps);
  }
  // [outer sync hook] Replica and outer state of local SGD / DiLoCo checkpoints.
  const CheckpointLayout layout{groups_.dp_size, groups_.tp.size, groups_.pp_size, groups_.dp_rank, groups_.tp.rank,
                                groups_.pp_rank, zero_optimizer_ ? 1 : 0};
  run_agreed(groups_.world, [&] {
    if (outer_sync_) {
      load_replica_state(*found, manifest, {flat_.get(), optimizer_.get(), parameters(), outer_sync_.get()}, layout,
                         config_.parallel);
    } else {
      check_resumable_without_outer_sync(*found, manifest);
    }
  });
  step_ = state.step;
  // A checkpoint of an fp32/bf16 run has no scaler state: an fp16 resume starts a fresh scale.
  if (loss_scaler_ && manifest.extra.contains("loss_scaler")) loss_scaler_->load_json(manifest.extra["loss_scaler"]);
  if (logging) {
    spdlog::info("checkpoint: resumed from {} at step {} (saved under dp {} x tp {} x pp {}, zero {})", *found,
                 step_, manifest.layout.dp, manifest.layout.tp, manifest.layout.pp, manifest.layout.zero_stage);
  }
  return true;
}

void Trainer::init_from(const std::string& path) {
  std::string step_dir;
  Manifest manifest;
  CheckpointState state;
  state.params = parameters();  // weights and masks only: the optimizer and the step start fresh
  run_agreed(groups_.world, [&] {
    step_dir = resolve_checkpoint(path);
    manifest = read_manifest(step_dir);
    TESSERA_REQUIRE(manifest.vocabulary.is_null() || Vocabulary::from_json(manifest.vocabulary) == vocab_,
                    "init.from {}: the checkpoint's vocabulary is not the vocabulary of {}", step_dir,
                    config_.data.path);
    load_checkpoint(step_dir, state, groups_.tp.rank, groups_.tp.size);
  });
  if (outer_sync_) outer_sync_->reset_anchor();  // [outer sync hook] the outer step starts from these weights
  if (groups_.is_logging_rank()) {
    const SparsityStats s = sparsity_stats(state.params);
    spdlog::info("init: weights from {} (step {}){}", step_dir, manifest.step,
                 s.masked_params == 0 ? std::string()
                                      : fmt::format(", {} masked tensors on this rank, {:.1f}% of their weights pruned",
                                                    s.masked_params, 100.0 * s.pruned / s.elements));
  }
}

bool Trainer::stop_requested_everywhere() {
  if (options_.stop_requested == nullptr) return false;
  // A signal may reach only some ranks (or reach them at different steps): agree on it.
  const double mine = options_.stop_requested->load() ? 1.0 : 0.0;
  return all_reduce_scalar(mine, groups_.world, ReduceOp::Max) > 0;
}

double Trainer::evaluate() {
  TESSERA_REQUIRE(data_->has_validation(), "Trainer::evaluate: the data source has no validation split");
  const TrainConfig& t = config_.train;
  // eval_iters global batches of the fixed validation stream, whatever the layout: cut into
  // microbatches, replica d takes microbatches d, d + dp, ...; every pipeline stage the same.
  const int total = t.eval_iters * (t.global_batch_size / t.micro_batch_size);
  std::vector<int> mine;
  for (int i = groups_.dp_rank; i < total; i += groups_.dp_size) mine.push_back(i);
  const auto make_ctx = [&](int k) {
    const BatchRequest request{Split::Validation, 0, static_cast<int64_t>(mine[k]) * t.micro_batch_size,
                               t.micro_batch_size, config_.model.seq_length, groups_.dp_rank, groups_.dp_size, k};
    Batch batch = data_->batch(request);
    check_batch(batch, request, vocab_.size());
    MicrobatchContext ctx;
    ctx.compute = compute_.get();
    ctx.microbatch = k;
    ctx.tokens = batch.tokens;
    ctx.targets = batch.targets;
    ctx.training = false;
    return ctx;
  };
  double sum = 0;
  if (uses_executor()) {
    const bool tracing = trace_ && trace_->enabled();
    if (trace_) trace_->set_step(step_, false);
    sum = executor_->forward_only(static_cast<int>(mine.size()), make_ctx, t.micro_batch_size,
                                  config_.model.seq_length);
    if (trace_) trace_->set_step(step_, tracing);
    sum = all_reduce_scalar(sum, groups_.pp, ReduceOp::Sum);
  } else {
    for (size_t k = 0; k < mine.size(); ++k) sum += chunks_.front()->forward(Tensor(), make_ctx(k)).f32()[0];
  }
  const double val_loss = all_reduce_scalar(sum, groups_.dp, ReduceOp::Sum) / total;
  if (options_.callbacks.on_eval) options_.callbacks.on_eval(step_, val_loss);
  return val_loss;
}

void Trainer::fit() {
  const TrainConfig& t = config_.train;
  const CheckpointConfig& ckpt = config_.checkpoint;
  const bool resumed = ckpt.resume == "auto" && resume();
  if (!resumed && !config_.init.from.empty()) init_from(config_.init.from);
  first_step_ = step_;
  std::unique_ptr<MetricsWriter> metrics;
  const bool logging = groups_.is_logging_rank();
  // A resumed run continues the metrics of the run it resumes.
  if (logging && !config_.log.metrics.empty()) {
    metrics = std::make_unique<MetricsWriter>(config_.log.metrics, step_ > 0);
  }
  const double tokens_per_step = static_cast<double>(t.global_batch_size) * config_.model.seq_length;
  const double flops_per_step = graph_.flops_per_token() * tokens_per_step;
  const int world = groups_.world ? groups_.world->size() : 1;
  if (logging) {
    // Only what the trainer measures or allocates: the layout, the stages and the parameter
    // count are the config's, and `tessera train`'s banner prints them (launcher/banner.cc).
    spdlog::info("model: {:.1f} MFLOP per token; peak {:.1f} GFLOP/s per rank ({}), MFU's reference",
                 graph_.flops_per_token() / 1e6, peak_flops_ / 1e9, t.peak_tflops > 0 ? "train.peak_tflops" : "measured");
    spdlog::info("optimizer state: {:.2f} MiB per rank{}", optimizer_state_bytes() / 1048576.0,
                 zero_optimizer_ ? fmt::format(" (ZeRO-1 sharded over dp {})", groups_.dp_size) : "");
  }
  double window_ms = 0, window_exposed_ms = 0, window_span_ms = 0, window_tp_ms = 0;
  double window_dp_bytes = 0, window_dp_wait_ms = 0;
  int window_steps = 0;
  bool stopped = false;
  while (step_ < t.max_steps && !stopped) {
    const StepResult r = train_step();
    window_ms += r.step_ms;
    window_tp_ms += r.tp_comm_ms;
    window_exposed_ms += grad_sync_stats().exposed_ms;
    window_span_ms += grad_sync_stats().comm_span_ms;
    window_dp_bytes += r.dp_bytes;
    window_dp_wait_ms += r.dp_wait_ms;
    ++window_steps;
    const bool eval_now = t.eval_interval > 0 && (step_ % t.eval_interval == 0 || step_ == t.max_steps);
    const bool log_now = step_ % config_.log.interval == 0 || step_ == t.max_steps || step_ == 1;
    std::optional<double> val;
    if (eval_now && data_->has_validation()) val = evaluate();
    // [outer sync hook] Between syncs the replicas share no per-step collective: agree on a
    // stop request only on logging steps, so the slow dp link is not crossed every step.
    stopped = (!outer_sync_ || log_now) && stop_requested_everywhere();
    const bool interval_due = ckpt.interval > 0 && step_ % ckpt.interval == 0;
    if (!ckpt.dir.empty() && (interval_due || stopped || (ckpt.interval > 0 && step_ == t.max_steps))) save();
    if (stopped && logging) {
      spdlog::info("stop requested: {} at step {}, exiting",
                   ckpt.dir.empty() ? "no checkpoint.dir, nothing saved" : "checkpoint saved", step_);
    }
    if (!(log_now || val)) continue;
    StepMetrics m;
    m.step = step_;
    m.max_steps = t.max_steps;
    // [outer sync hook] The replicas' mean loss, reduced only for the steps that are logged.
    m.loss = outer_sync_ ? all_reduce_scalar(r.loss, groups_.dp, ReduceOp::Avg) : r.loss;
    m.lr = r.lr;
    m.grad_norm = r.grad_norm;
    m.step_ms = window_ms / window_steps;
    m.tokens_per_s = tokens_per_step / (m.step_ms / 1e3);
    m.mfu = flops_per_step / (m.step_ms / 1e3) / (peak_flops_ * world);
    m.mem_bytes = host_memory_stats().peak_bytes;
    m.val_loss = val;
    m.skipped_steps = skipped_steps_;
    if (loss_scaler_) m.loss_scale = loss_scaler_->scale();
    if (grad_sync_) {
      m.grad_comm_exposed_ms = window_exposed_ms / window_steps;
      m.grad_comm_span_ms = window_span_ms / window_steps;
    }
    if (groups_.tp.size > 1) m.tp_comm_ms = window_tp_ms / window_steps;
    if (data_parallel()) {
      m.dp_bytes = window_dp_bytes / window_steps;
      m.dp_wait_ms = window_dp_wait_ms / window_steps;
    }
    window_ms = window_exposed_ms = window_span_ms = window_tp_ms = window_dp_bytes = window_dp_wait_ms = 0;
    window_steps = 0;
    if (options_.callbacks.on_log) options_.callbacks.on_log(m);
    if (logging) {
      if (!options_.callbacks.on_log) spdlog::info("{}", format_step_line(m));
      if (metrics) metrics->write(m);
    }
  }
  if (stopped) return;
  if (groups_.world && groups_.world->size() > 1) {
    // Peak tensor memory and pipeline depth of every rank, for memory tables per stage.
    Tensor mine = Tensor::full({2}, 0.f);
    mine.f32()[0] = static_cast<float>(host_memory_stats().peak_bytes / 1048576.0);
    mine.f32()[1] = static_cast<float>(peak_in_flight());
    Tensor all = Tensor::empty({2 * groups_.world->size()});
    groups_.world->all_gather(mine, all);
    if (logging) {
      std::vector<std::string> parts;
      for (int r = 0; r < groups_.world->size(); ++r) {
        parts.push_back(fmt::format("{:.1f} MiB/{:.0f}", all.f32()[2 * r], all.f32()[2 * r + 1]));
      }
      spdlog::info("peak tensor memory / microbatches in flight per rank: {}", fmt::join(parts, ", "));
    }
  }
  if (trace_ && groups_.world) {
    trace_->write(config_.log.trace, *groups_.world);
    if (logging) {
      spdlog::info("trace of steps {}-{} written to {}", first_step_ + kTraceFirstStep + 1,
                   std::min<int64_t>(t.max_steps, first_step_ + kTraceFirstStep + kTraceSteps), config_.log.trace);
    }
  }
}

}  // namespace tessera
