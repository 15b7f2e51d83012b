// The Trainer's construction, its MFU roof and evaluation. The step is in trainer_step.cc,
// checkpoints in trainer_checkpoint.cc, the loop in trainer_fit.cc.
#include "runtime/train/trainer.h"

#include <chrono>

#include "partitioner/layout_rules.h"
#include "runtime/device/device_memory.h"
#include "runtime/train/gemm_roof.h"
#include "runtime/train/runtime_support.h"
#include "runtime/train/sharded_adamw.h"

namespace tessera {

using Clock = TraceRecorder::Clock;

namespace {

// The sum of microbatch losses ([1] each), in order; a GPU's are read back in one host wait.
double sum_of_losses(const std::vector<Tensor>& losses) {
  std::vector<Tensor> host;
  for (size_t i = 0; i < losses.size(); ++i) host.push_back(Tensor::empty({1}));
  read_to_host(losses, host);
  double sum = 0;
  for (const Tensor& h : host) sum += h.f32()[0];
  return sum;
}

}  // namespace

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
  // Every entry point gets the same refusals and layout rules, with the config's lines.
  check_runtime_support(config_);
  LayoutFacts facts = layout_facts(config_, 0, static_cast<int>(options_.custom_layers.size()));
  facts.dp = groups_.dp_size;
  require_valid_layout(config_.model, facts, config_.source.empty() ? "config" : config_.source);
  compute_ = options_.compute ? options_.compute : make_cpu_compute(parse_precision(t.precision), t.gemm);
  const bool on_device = !compute_->device().is_cpu();
  TESSERA_REQUIRE(on_device == (t.device == "cuda"),
                  "train.device = {}: the trainer was given a Compute on {} (TrainerOptions::compute)", t.device,
                  device_name(compute_->device()));
  if (compute_->policy().loss_scaling()) {
    LossScalerConfig ls;
    ls.initial_scale = t.initial_loss_scale;
    ls.growth_interval = t.loss_scale_window;
    ls.min_scale = t.min_loss_scale;
    loss_scaler_.emplace(ls);
  }
  microbatches_ = t.global_batch_size / (t.micro_batch_size * groups_.dp_size);

  const int v = par.virtual_stages;
  TESSERA_CHECK(pipelined() || v == 1, "virtual stages need pipeline parallelism");
  // A fixed partition (the bring-up's choice, broadcast from rank 0), or the FLOP balance.
  const std::vector<int> counts = choose_partition(config_, graph_).partition;
  const bool selective = par.recompute == "selective";
  if (data_parallel() && !local_sync() && par.zero_stage >= 2) {
    // Stage 3 gathers in the compute precision (zero_units.h). Each layer is handed over as it
    // is built, so the whole model never exists on one rank.
    zero_units_ = std::make_unique<ZeroUnits>(*groups_.dp, compute_->ops(), par.zero_stage, par.zero_prefetch,
                                              compute_->compute_dtype(),
                                              par.grad_reduce_dtype == "bf16" ? DType::BF16 : DType::F32,
                                              [this](int layer) { fix_layer_gradients(layer); });
  }
  std::vector<int> graph_layer;  // of each local layer, for the outer sync's fragments
  for (const LayerRange& chunk : rank_chunks(counts, groups_.pp_size, v, groups_.pp_rank)) {
    std::function<void(Layer&)> on_built;
    const int index = static_cast<int>(chunks_.size());
    if (zero_units_) on_built = [this, index](Layer& l) { zero_units_->adopt(index, l); };
    chunks_.push_back(std::make_unique<Model>(config_.model, graph_, groups_.tp, t.seed, chunk.first, chunk.last,
                                              selective, options_.layer_registry, on_built));
    for (int l = chunk.first; l < chunk.last; ++l) graph_layer.push_back(l);
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
    PipelineLayout layout{groups_.pp, groups_.pp_rank, groups_.pp_size, v, compute_->compute_dtype(),
                          compute_->device()};
    executor_ = std::make_unique<StageExecutor>(chunk_ptrs, layout, par.recompute == "full", trace_.get());
    schedule_ = make_schedule(parse_schedule(par.schedule), groups_.pp_rank, groups_.pp_size, microbatches_, v);
  }
  if (zero_units_) {
    // A table tied across stages is summed block by block after the reduce-scatters.
    if (executor_) tied_blocks_ = executor_->take_tied_embeddings();
    zero_units_->seal();
    zero_units_->set_trace(trace_.get());
    optimizer_ = std::make_unique<ShardedAdamW>(*zero_units_, *groups_.dp, t.optimizer, compute_->ops());
  } else {
    // On a GPU the parameters, built and initialised on the host, move into a flat device buffer.
    if (data_parallel() || local_sync() || on_device) {
      flat_ = std::make_unique<FlatParameters>(chunk_ptrs, groups_.dp_size, compute_->device());
    }
    if (data_parallel() && !local_sync()) {
      grad_sync_ = std::make_unique<GradientSync>(*flat_, *groups_.dp, par.bucket_mb * (1 << 20), par.zero_stage,
                                                  par.grad_reduce_dtype == "bf16" ? DType::BF16 : DType::F32,
                                                  compute_->ops());
    }
    if (local_sync()) {
      // [outer sync hook] No per-step gradient sync: each replica keeps its own full AdamW below.
      outer_sync_ = std::make_unique<OuterSync>(
          *flat_, groups_.host_dp, outer_sync_config(par),
          outer_fragment_of_layers(graph_layer, config_.model.num_layers, par.outer_fragments));
    }
    // ZeRO-1 shards the moments over the replicas of a synchronous run only.
    optimizer_ = make_optimizer(t.optimizer, par.zero_stage, parameters(), flat_.get(), grad_sync_.get(),
                                grad_sync_ ? groups_.dp : nullptr, compute_->ops());
  }
  // ZeRO-2/3 gather and reduce-scatter around each layer; the outer sync progresses the
  // reductions running behind the inner steps between layers (streaming DiLoCo).
  LayerHooks* hooks = zero_units_ ? static_cast<LayerHooks*>(zero_units_.get()) : outer_sync_.get();
  int first = 0;
  for (Model* m : chunk_ptrs) {
    m->set_hooks(hooks, first);
    first += static_cast<int>(m->layers().size());
  }
  // The set-up's peak (data, the layers built and sharded) is reported apart from the steps'.
  // The start-up roof's GEMM buffers are not training memory: the steps' peak starts after them.
  setup_peak_bytes_ = host_memory_stats().peak_bytes;
  set_mfu_roof();
  reset_host_memory_peak();
  if (on_device) device_memory(compute_->device())->reset_peak();
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
  // Reduced in fp32 tensors like every other collective; the values here are O(1). The world
  // is MPI on every device; the other groups move tensors of the compute's device.
  Tensor t = Tensor::full({1}, static_cast<float>(value));
  if (comm != groups_.world) t = to_device(t, compute_->device());
  comm->all_reduce(t, op);
  return to_device(t, Device::cpu()).f32()[0];
}

int64_t Trainer::optimizer_state_bytes() const {
  return optimizer_->state_bytes() + (outer_sync_ ? outer_sync_->state_bytes() : 0);
}

void Trainer::message(LogLevel level, const std::string& line) const {
  if (groups_.is_logging_rank() && options_.callbacks.on_message) options_.callbacks.on_message(level, line);
}

void Trainer::trace(const char* name, Clock::time_point start) {
  if (trace_) trace_->add(name, name, start, Clock::now());
}

void Trainer::set_mfu_roof() {
  const TrainConfig& t = config_.train;
  const DType dtype = compute_->compute_dtype();
  Backend& ops = compute_->ops();
  if (compute_->policy().low_precision() && !ops.native_matmul(dtype)) {
    message(LogLevel::Warning,
            fmt::format("train.precision = {}: this CPU has no native {} GEMM; {} emulates it ({}), slower than fp32",
                        t.precision, dtype_name(dtype), ops.name(), ops.matmul_implementation(dtype)));
  }
  if (t.peak_tflops > 0) {
    peak_flops_ = t.peak_tflops * 1e12;
    message(LogLevel::Info, fmt::format("MFU roof: train.peak_tflops = {} TFLOP/s per rank", t.peak_tflops));
    return;
  }
  const GemmRoof roof = measure_gemm_roof(ops, dtype);
  peak_flops_ = roof.flops;
  message(LogLevel::Info,
          fmt::format("MFU roof: {:.0f} GFLOP/s per rank, the best of 10 1024^3 {} GEMMs on {} ({}) at start-up",
                      roof.flops / 1e9, roof.dtype, ops.name(), roof.implementation));
}

void Trainer::raise_mfu_roof(double achieved) {
  const double before = peak_flops_;
  peak_flops_ = roof_at_least(peak_flops_, achieved, [this] {
    return measure_gemm_roof(compute_->ops(), compute_->compute_dtype()).flops;
  });
  message(LogLevel::Warning,
          fmt::format("MFU roof re-measured: {:.0f} GFLOP/s per rank; the start-up measurement ({:.0f}) was below "
                      "step {}'s {:.0f} (other work on the cores while it ran)",
                      peak_flops_ / 1e9, before / 1e9, step_, achieved / 1e9));
}

double Trainer::evaluate() {
  TESSERA_REQUIRE(data_->has_validation(), "Trainer::evaluate: the data source has no validation split");
  // The masters changed since the step's forward made the low-precision copies (the update):
  // without this, mixed-precision evaluation multiplied by the weights of before the update.
  compute_->invalidate_weight_copies();
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
    return make_context(k, batch, false);
  };
  double sum = 0;
  if (uses_executor()) {
    const bool tracing = trace_ && trace_->enabled();
    if (trace_) trace_->set_step(step_, false);
    sum = sum_of_losses(executor_->forward_only(static_cast<int>(mine.size()), make_ctx, t.micro_batch_size,
                                                config_.model.seq_length));
    if (trace_) trace_->set_step(step_, tracing);
    sum = all_reduce_scalar(sum, groups_.pp, ReduceOp::Sum);
  } else {
    std::vector<Tensor> losses;
    for (size_t k = 0; k < mine.size(); ++k) losses.push_back(chunks_.front()->forward(Tensor(), make_ctx(k)));
    sum = sum_of_losses(losses);
  }
  const double val_loss = all_reduce_scalar(sum, groups_.dp, ReduceOp::Sum) / total;
  if (options_.callbacks.on_eval) options_.callbacks.on_eval(step_, val_loss);
  return val_loss;
}

}  // namespace tessera
