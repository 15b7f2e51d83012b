// User-defined layers inside the layer graph, Model and Trainer: placement and costs in the
// graph, building through a LayerRegistry, training, checkpoints, callbacks and the
// step-level API.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "test_custom_layer_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {

std::vector<std::string> layer_names(const LayerGraph& g) {
  std::vector<std::string> names;
  for (const LayerSpec& l : g.layers) names.push_back(l.name);
  return names;
}

std::vector<double> losses_of(Trainer& trainer, int steps) {
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) out.push_back(trainer.train_step().loss);
  return out;
}

// Two devices per node, as many nodes as a layout needs.
ClusterModel small_cluster() {
  ClusterModel cluster;
  cluster.name = cluster.source = "test";
  cluster.devices_per_node = 2;
  cluster.device.peak_flops = 100e9;
  cluster.device.memory_bytes = 1 << 30;
  cluster.device.memory_bandwidth = 10e9;
  cluster.device.gemm_efficiency = {{256, 0.5}};
  cluster.intra_node = cluster.inter_node = {2e-6, 4e9};
  return cluster;
}

}  // namespace

TEST_CASE("custom layers are placed in the graph with their costs", "[custom_layer]") {
  const Config c = tiny_trainer_config();
  CustomLayerPlacement costly = gain_after("h.0", "costly");
  costly.cost.forward_flops_per_token = 1000;
  costly.cost.activation_bytes_per_token = 8;
  const LayerGraph g = build_layer_graph(c.model, 16, 2, {gain_after("h.0", "gain.0"), costly});
  CHECK(layer_names(g) == std::vector<std::string>{"embedding", "h.0", "gain.0", "costly", "h.1", "head"});
  const int64_t N = 2 * 8;
  const LayerSpec& gain = g.layers[2];
  CHECK(gain.kind == LayerKind::Custom);
  CHECK(gain.custom_type == "gain");
  CHECK(gain.params == 16);
  CHECK(gain.out_features == 16);
  // Defaults of an element-wise layer: 4 FLOPs per value forward, twice that backward, input saved.
  CHECK(gain.forward_flops == Approx(4.0 * 16 * N));
  CHECK(gain.backward_flops == Approx(8.0 * 16 * N));
  CHECK(gain.activation_bytes == 4 * 16 * N);
  CHECK(g.layers[3].forward_flops == Approx(1000.0 * N));
  CHECK(g.layers[3].backward_flops == Approx(2000.0 * N));
  CHECK(g.layers[3].activation_bytes == 8 * N);
  CHECK(g.total_params() == build_layer_graph(c.model, 16, 2).total_params() + 32);
  CHECK(layer_of_parameter(g, "gain.0.gain") == 2);

  // The tp sharding rule: replicated, the same costs per token at another micro batch.
  const ShardedLayer s = shard_layer(g.layers[3], c.model, 16, 4, TpOptions{2, false, 4});
  CHECK(s.params == 16);
  CHECK(s.forward_flops == Approx(1000.0 * 4 * 8));
  CHECK(s.activation_bytes == 8 * 4 * 8);
  CHECK(s.forward_comm.empty());
  CHECK(s.output_bytes == 4 * 4 * 8 * 16);
}

TEST_CASE("custom layer placement errors name the layer", "[custom_layer]") {
  const Config c = tiny_trainer_config();
  CHECK_THROWS_WITH(build_layer_graph(c.model, 16, 2, {gain_after("h.7", "g")}),
                    "layer graph: no layer named 'h.7' to insert 'g' after");
  CHECK_THROWS_WITH(build_layer_graph(c.model, 16, 2, {gain_after("head", "g")}),
                    "layer graph: 'g' cannot follow the head, which computes the loss");
  CHECK_THROWS_WITH(build_layer_graph(c.model, 16, 2, {gain_after("h.0", "h.1")}),
                    "layer graph: a layer named 'h.1' already exists");
  CHECK_THROWS_AS(build_layer_graph(c.model, 16, 2, {gain_after("h.0", "g", 0)}), InputError);
}

TEST_CASE("Model builds custom layers through the registry it is given", "[custom_layer]") {
  const Config c = tiny_trainer_config();
  const LayerGraph g = build_layer_graph(c.model, 16, 2, {gain_after("embedding", "gain.0")});
  const LayerRegistry registry = gain_registry(0.5f);
  Model model(c.model, g, TpGroup::single(), 7, 0, -1, false, &registry);
  REQUIRE(model.layers().size() == 5);
  CHECK(model.layers()[1]->name() == "gain.0");
  Parameter* gain = model.find("gain.0.gain");
  REQUIRE(gain != nullptr);
  CHECK(gain->value.f32()[3] == 0.5f);
  // A pipeline chunk holding only the custom layer.
  Model chunk(c.model, g, TpGroup::single(), 7, 1, 2, false, &registry);
  CHECK(chunk.layers().front()->input_shape(2, 8) == Shape{16, 16});

  CHECK_THROWS_WITH(Model(c.model, g, TpGroup::single(), 7),
                    "layer 'gain.0' is a custom layer of type 'gain', but no LayerRegistry was given to build it");
  LayerRegistry other;
  other.add("scale", [](const CustomLayerArgs& a) {
    return std::make_unique<GainLayer>(a.spec.name, a.spec.in_features, 1.f, a.seed, a.tp);
  });
  CHECK_THROWS_WITH(Model(c.model, g, TpGroup::single(), 7, 0, -1, false, &other),
                    "layer 'gain.0': custom layer type 'gain' is not in the LayerRegistry (types: [scale])");
  CHECK_THROWS_WITH(other.add("scale", [](const CustomLayerArgs&) { return std::unique_ptr<Layer>(); }),
                    "LayerRegistry::add: custom layer type 'scale' is registered twice");
  LayerRegistry misnamed;
  misnamed.add("gain", [](const CustomLayerArgs& a) {
    return std::make_unique<GainLayer>(a.spec.name, a.spec.in_features + 1, 1.f, a.seed, a.tp);
  });
  CHECK_THROWS_WITH(Model(c.model, g, TpGroup::single(), 7, 0, -1, false, &misnamed),
                    "layer 'gain.0': the layer maps [8, 17] to [8, 17] per sequence, the graph says [rows, 16] to "
                    "[rows, 16]");
}

TEST_CASE("the Trainer trains, clips and checkpoints a custom layer's parameters", "[custom_layer]") {
  const Config c = tiny_trainer_config();
  const Dataset data = tiny_dataset();
  const LayerRegistry registry = gain_registry(1.f);
  TrainerOptions with;
  with.custom_layers = {gain_after("h.0", "gain.0")};
  with.layer_registry = &registry;
  Trainer plain(c, data, ParallelGroups{});
  Trainer custom(c, data, ParallelGroups{}, with);
  CHECK(custom.graph().layers.size() == plain.graph().layers.size() + 1);
  REQUIRE(custom.parameters().size() == plain.parameters().size() + 1);
  // A gain of 1 is the identity: the first step's loss is the plain model's, bit for bit.
  const double first_plain = plain.train_step().loss, first_custom = custom.train_step().loss;
  CHECK(first_custom == first_plain);
  Parameter* gain = custom.chunks().front()->find("gain.0.gain");
  REQUIRE(gain != nullptr);
  CHECK(gain->value.f32()[0] != 1.f);  // AdamW updated it
  const std::vector<double> later = losses_of(custom, 2);
  CHECK(later.back() != losses_of(plain, 2).back());

  // Saved and restored with everything else.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_custom_layer_ckpt";
  std::filesystem::remove_all(dir);
  const std::string step_dir = custom.save(dir.string());
  CHECK(std::filesystem::exists(step_dir));
  Trainer restored(c, data, ParallelGroups{}, with);
  REQUIRE(restored.resume(dir.string()));
  CHECK(restored.step() == 3);
  Parameter* back = restored.chunks().front()->find("gain.0.gain");
  for (int64_t i = 0; i < 16; ++i) CHECK(back->value.f32()[i] == gain->value.f32()[i]);
  CHECK(restored.train_step().loss == custom.train_step().loss);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a custom layer under pipeline partitioning: auto partition counts it", "[custom_layer]") {
  Config c = tiny_trainer_config();
  c.parallel.pipeline_model_parallel_size = 2;
  const LayerGraph g = build_layer_graph(c.model, 16, 2, {gain_after("h.0", "gain.0")});
  const std::vector<int> counts = stage_partition(c.parallel, g);
  REQUIRE(counts.size() == 2);
  CHECK(counts[0] + counts[1] == 5);
  // And the layout search plans with it.
  SearchOptions o;
  o.world = 2;
  o.global_batch_size = 4;
  o.custom_layers = {gain_after("h.0", "gain.0")};
  Layout lay;
  lay.pp = 2;
  lay.micro_batch_size = 2;
  const Evaluation e = evaluate_layout(c.model, 16, CostModel(small_cluster()), lay, o);
  REQUIRE(e.plan.has_value());
  CHECK(std::accumulate(e.plan->partition.begin(), e.plan->partition.end(), 0) == 5);
}

TEST_CASE("an explicit partition counts custom layers: config check, trainer, layout rules", "[custom_layer]") {
  Config c = tiny_trainer_config();
  c.data.format = "tokens";  // an integer model.vocab, as validate_config requires
  const std::vector<CustomLayerPlacement> gain = {gain_after("h.0", "gain.0")};
  // embedding, h.0, gain.0, h.1, head: 5 layers where the config alone knows of 4.
  c.parallel.partition = {5};
  CHECK_NOTHROW(validate_with_custom_layers(c, 1, gain));
  CHECK_THROWS_WITH(validate_for_world(c, 1), "config: parallel.partition = [5]: must sum to the model's 4 layers "
                                              "(model.num_layers = 2 plus embedding and head), not 5");
  c.parallel.partition = {4};
  CHECK_THROWS_WITH(validate_with_custom_layers(c, 1, gain),
                    "config: parallel.partition = [4]: must sum to the model's 5 layers (model.num_layers = 2 plus "
                    "embedding, head and 1 custom layer), not 4");
  // More stages than num_layers + 2 are fine when custom layers fill them; the world rules still apply.
  c.parallel.partition = {1, 1, 1, 1, 1};
  c.parallel.pipeline_model_parallel_size = 5;
  CHECK_NOTHROW(validate_with_custom_layers(c, 5, gain));
  CHECK_THROWS_WITH(validate_with_custom_layers(c, 4, gain), Catch::Contains("world size 4 is not divisible"));
  CHECK_THROWS_WITH(validate_config(c), Catch::Contains("pipeline_model_parallel_size * virtual_stages = 5 stages is "
                                                        "more than the model's 4 layers"));

  // The trainer checks the partition against the graph it built, custom layers included.
  c.parallel.pipeline_model_parallel_size = 1;
  const Dataset data = tiny_dataset();
  const LayerRegistry registry = gain_registry(1.f);
  TrainerOptions with;
  with.custom_layers = gain;
  with.layer_registry = &registry;
  c.parallel.partition = {5};
  Trainer trainer(c, data, ParallelGroups{}, with);
  CHECK(trainer.chunks().front()->layers().size() == 5);
  CHECK(std::isfinite(trainer.train_step().loss));
  c.parallel.partition = {4};
  // The same line as the config check's above: one rule, one owner (partitioner/layout_rules).
  CHECK_THROWS_WITH(Trainer(c, data, ParallelGroups{}, with),
                    "config: parallel.partition = [4]: must sum to the model's 5 layers (model.num_layers = 2 plus embedding, "
                    "head and 1 custom layer), not 4");
  // Regression: a partition with more entries than stages silently trained only its first.
  c.parallel.partition = {2, 3};
  CHECK_THROWS_WITH(Trainer(c, data, ParallelGroups{}, with),
                    "config: parallel.partition = [2, 3]: must have pipeline_model_parallel_size * virtual_stages = 1 entries, "
                    "not 2");

  // The layout rules: pp 5 has a layer per stage only with the custom layer.
  Layout lay;
  lay.pp = 5;
  lay.micro_batch_size = 1;
  CHECK(layout_error(c.model, lay, 5, 4).value_or("ok") == "pp x v = 5 stages > 4 layers (num_layers 2 + embedding + head)");
  CHECK(layout_error(c.model, lay, 5, 4, 1).value_or("ok") == "ok");
  CHECK(layout_error(c.model, lay, 5, 4, 2).value_or("ok") == "ok");
  SearchOptions o;
  o.world = 5;
  o.global_batch_size = 4;
  o.custom_layers = gain;
  const Evaluation e = evaluate_layout(c.model, 16, CostModel(small_cluster()), lay, o);
  REQUIRE(e.plan.has_value());
  CHECK(e.plan->partition == std::vector<int>{1, 1, 1, 1, 1});
  const auto has_pp5 = [](const SearchResult& r) {
    return std::any_of(r.plans.begin(), r.plans.end(), [](const PartitionPlan& p) { return p.pp == 5; });
  };
  CHECK(has_pp5(search_layouts(c.model, 16, CostModel(small_cluster()), o)));
  o.custom_layers.clear();
  CHECK_FALSE(has_pp5(search_layouts(c.model, 16, CostModel(small_cluster()), o)));
}

TEST_CASE("callbacks see every step, evaluation and checkpoint", "[custom_layer]") {
  Config c = tiny_trainer_config();
  c.train.max_steps = 3;
  c.train.eval_interval = 2;
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_callbacks_ckpt";
  std::filesystem::remove_all(dir);
  c.checkpoint.dir = dir.string();
  c.checkpoint.interval = 3;
  const Dataset data = tiny_dataset();
  std::vector<int64_t> steps, eval_steps, ckpt_steps;
  std::vector<double> losses;
  TrainerOptions options;
  options.callbacks.on_step = [&](const StepResult& r) {
    steps.push_back(r.step);
    losses.push_back(r.loss);
  };
  options.callbacks.on_eval = [&](int64_t step, double val) {
    eval_steps.push_back(step);
    CHECK(std::isfinite(val));
  };
  options.callbacks.on_checkpoint = [&](int64_t step, const std::string& step_dir) {
    ckpt_steps.push_back(step);
    CHECK(std::filesystem::exists(step_dir));
  };
  Trainer trainer(c, data, ParallelGroups{}, options);
  trainer.fit();
  CHECK(steps == std::vector<int64_t>{1, 2, 3});
  CHECK(eval_steps == std::vector<int64_t>{2, 3});
  CHECK(ckpt_steps == std::vector<int64_t>{3});
  Trainer again(c, data, ParallelGroups{});
  CHECK(losses == losses_of(again, 3));
  std::filesystem::remove_all(dir);
}

TEST_CASE("forward_backward + optimizer_step is train_step", "[custom_layer]") {
  const Config c = tiny_trainer_config();
  const Dataset data = tiny_dataset();
  Trainer whole(c, data, ParallelGroups{});
  Trainer halves(c, data, ParallelGroups{});
  Trainer given(c, data, ParallelGroups{});
  DatasetSource source(data, c.model.seq_length, c.train.seed);
  CHECK_THROWS_WITH(halves.optimizer_step(), Catch::Contains("optimizer_step without a forward_backward for step 1"));
  for (int step = 0; step < 3; ++step) {
    const StepResult w = whole.train_step();
    const double loss = halves.forward_backward();
    const StepResult h = halves.optimizer_step();
    // The same step's batch, handed in: this replica's 2 microbatches x 2 samples.
    const Batch batch = source.batch({Split::Train, step, 0, 4, c.model.seq_length});
    const double given_loss = given.forward_backward(batch);
    const StepResult g = given.optimizer_step();
    CHECK(loss == w.loss);
    CHECK(h.loss == w.loss);
    CHECK(h.grad_norm == w.grad_norm);
    CHECK(h.step == step + 1);
    CHECK(given_loss == w.loss);
    CHECK(g.grad_norm == w.grad_norm);
  }
  Batch wrong = source.batch({Split::Train, 0, 0, 2, c.model.seq_length});
  CHECK_THROWS_WITH(given.forward_backward(wrong),
                    "Trainer::forward_backward: the batch must be I32 tokens and targets of shape [4, 8] (microbatches "
                    "per rank 2 x micro_batch_size 2, seq_length), got [2, 8]");
}
