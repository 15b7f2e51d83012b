// bench_pipeline_sleep: the pipeline executor's own bubble, apart from core sharing. Every
// stage's compute is a fixed sleep (a custom layer registered through the LayerRegistry), so
// p ranks on 2 cores do not slow each other's compute; the Trainer, the StageExecutor, the
// schedules and the MPI point-to-point traffic between stages are the real ones.
//
//   mpirun -np P bench_pipeline_sleep --schedule 1f1b|gpipe|interleaved --microbatches M
//          [--virtual V] [--forward-ms F] [--steps N] --trace FILE
//
// The model is a GPT with P * V blocks of width 8 (microseconds of real compute), each followed
// by a "sleep" layer; the partition gives every (virtual) stage one block and its sleep layer
// (the first also the embedding, the last the head). A sleep layer waits F / V ms in forward
// and 2 F / V ms in backward, so each rank computes F + 2F per microbatch whatever V is.
// bench/bench_pipeline_sleep.py runs the grid and computes the bubble from the trace.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <tessera/tessera.h>

namespace {

using namespace tessera;

// Identity in both directions after a fixed sleep; no parameters.
class SleepLayer : public Layer {
 public:
  SleepLayer(std::string name, int64_t width, double forward_ms, TpGroup tp)
      : name_(std::move(name)), width_(width), forward_ms_(forward_ms), tp_(tp) {}
  const std::string& name() const override { return name_; }
  Tensor forward(const Tensor& x, const MicrobatchContext& ctx) override {
    sleep(forward_ms_);
    if (ctx.training) count_.put(ctx.microbatch, 0);
    return x;
  }
  Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) override {
    count_.take(ctx.microbatch);
    sleep(2 * forward_ms_);
    return dy;
  }
  std::vector<Parameter*> parameters() override { return {}; }
  Shape input_shape(int64_t B, int64_t T) const override { return {tp_.outside_rows(B * T), width_}; }
  Shape output_shape(int64_t B, int64_t T) const override { return input_shape(B, T); }
  int saved_count() const override { return count_.size(); }

 private:
  static void sleep(double ms) { std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms)); }
  std::string name_;
  int64_t width_;
  double forward_ms_;
  TpGroup tp_;
  ActivationStash<int> count_;  // which microbatches are in flight, as a real layer's activations
};

// Tokens 0..15 in a fixed pattern: the loss is irrelevant here, only the shapes are.
class PatternTokens : public DataSource {
 public:
  Vocabulary vocabulary() const override { return Vocabulary::tokens(16); }
  bool has_validation() const override { return false; }
  Batch batch(const BatchRequest& r) override {
    Batch b{Tensor::empty({r.count, r.seq_length}, DType::I32), Tensor::empty({r.count, r.seq_length}, DType::I32)};
    for (int64_t i = 0; i < r.count * r.seq_length; ++i) {
      b.tokens.i32()[i] = static_cast<int32_t>((r.first * 7 + i) % 16);
      b.targets.i32()[i] = static_cast<int32_t>((r.first * 7 + i + 1) % 16);
    }
    return b;
  }
};

struct Options {
  std::string schedule = "1f1b", trace;
  int microbatches = 8, virtual_stages = 1, steps = 12;
  double forward_ms = 10;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--schedule") o.schedule = value;
    else if (key == "--microbatches") o.microbatches = std::stoi(value);
    else if (key == "--virtual") o.virtual_stages = std::stoi(value);
    else if (key == "--forward-ms") o.forward_ms = std::stod(value);
    else if (key == "--steps") o.steps = std::stoi(value);
    else if (key == "--trace") o.trace = value;
    else throw InputError("unknown option " + key);
  }
  TESSERA_REQUIRE(!o.trace.empty(), "--trace FILE is required");
  return o;
}

// The partition: one block and its sleep layer per virtual stage, plus the embedding on the
// first and the head on the last.
std::vector<int> partition(int chunks) {
  std::vector<int> p;
  for (int c = 0; c < chunks; ++c) p.push_back(2 + (c == 0) + (c == chunks - 1));
  return p;
}

int run(const Options& o, int world_size) {
  const int chunks = world_size * o.virtual_stages;
  const std::string yaml = fmt::format(
      "model: {{arch: gpt, num_layers: {}, hidden_size: 8, num_attention_heads: 2, ffn_hidden_size: 16, "
      "seq_length: 4, vocab: '16'}}\n"
      "parallel: {{pipeline_model_parallel_size: {}, schedule: {}, virtual_stages: {}}}\n"
      "train: {{micro_batch_size: 1, global_batch_size: {}, max_steps: {}, eval_interval: 0, threads: 1, "
      "peak_tflops: 0.1}}\n"
      "data: {{format: tokens}}\nlog: {{interval: 1000000, trace: {}}}\n",
      chunks, world_size, o.schedule, o.virtual_stages, o.microbatches, o.steps, o.trace);
  Config config = parse_config_string(yaml, "bench_pipeline_sleep", {});
  validate_for_world(config, world_size);
  // Set after validation: the config's own check counts the built-in layers only, the Trainer
  // checks it against the graph with the custom layers.
  config.parallel.partition = partition(chunks);
  auto world = MpiCommunicator::world(config.parallel.timeout_s);
  ParallelGrid grid(*world, 1, world_size, 1);

  LayerRegistry layers;
  const double chunk_ms = o.forward_ms / o.virtual_stages;
  layers.add("sleep", [chunk_ms](const CustomLayerArgs& a) {
    return std::make_unique<SleepLayer>(a.spec.name, a.spec.in_features, chunk_ms, a.tp);
  });
  TrainerOptions options;
  options.config_yaml = config_to_yaml(config);
  options.layer_registry = &layers;
  for (int c = 0; c < chunks; ++c) {
    CustomLayerPlacement p;
    p.after = "h." + std::to_string(c);
    p.name = "sleep." + std::to_string(c);
    p.type = "sleep";
    p.in_features = 8;
    options.custom_layers.push_back(p);
  }
  PatternTokens data;
  Trainer trainer(config, data, parallel_groups(grid, false), options);
  trainer.fit();
  if (world->rank() == 0) {
    std::printf("bench_pipeline_sleep: %s, p %d, v %d, m %d, forward %.1f ms + backward %.1f ms per rank and "
                "microbatch, %d steps, trace %s\n", o.schedule.c_str(), world_size, o.virtual_stages,
                o.microbatches, o.forward_ms, 2 * o.forward_ms, o.steps, o.trace.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tessera::MpiEnvironment env(&argc, &argv);
  try {
    return run(parse(argc, argv), env.world_size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pipeline_sleep: error on rank %d: %s\n", env.world_rank(), e.what());
    if (env.world_size() > 1) tessera::abort_job(1);
    return 1;
  }
}
