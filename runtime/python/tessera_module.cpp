// Python bindings: `import tessera`. A Python research loop drives the runtime under
// `mpirun -np N python3 train.py`:
//
//   config = tessera.Config.from_yaml("configs/tests/gpt_tiny.yaml", ["train.max_steps=20"])
//   trainer = tessera.Trainer(config)            # MPI, the parallel grid, data, model
//   for _ in range(20): m = trainer.step()      # {"step", "loss", "lr", "grad_norm", "step_ms", ...}
//   tessera.Trainer(config, on_step=f, on_eval=g, on_checkpoint=h)   # called by fit() and step()
//   w = trainer.parameters()["wte.weight"]      # numpy view of this rank's shard, no copy
//
// The setup replicates launcher/train_command.cc (config checks, rank discovery, threads per
// rank, ParallelGrid, load_dataset, Trainer) without its signal handlers: Python owns the
// signals. tessera::Error and tessera::InputError arrive as tessera.Error and its subclass
// tessera.InputError, with the same one-line message.
#include <mpi.h>
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "launcher/threads.h"
#include "launcher/config_loader.h"
#include "launcher/plan_command.h"
#include "launcher/rank_discovery.h"
#include "runtime/train/runtime_support.h"
#include "partitioner/layout_search.h"
#include "partitioner/partition_plan.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/data/dataset.h"
#include "runtime/data/read_file.h"
#include "runtime/data/vocabulary.h"
#include "core/error.h"
#include "runtime/train/trainer.h"

#ifndef TESSERA_SOURCE_DIR
#define TESSERA_SOURCE_DIR "."
#endif

namespace py = pybind11;

namespace tessera {
namespace {

// The process's MPI: initialised by the first Trainer, finalized at interpreter exit (atexit),
// after which no Trainer can be made. MpiCommunicator's destructor does nothing once MPI is
// finalized, so Trainer objects still alive at exit are harmless.
std::unique_ptr<MpiEnvironment>& mpi_environment() {
  static std::unique_ptr<MpiEnvironment> env;
  return env;
}
bool g_mpi_finalized = false;

MpiEnvironment& ensure_mpi() {
  auto& env = mpi_environment();
  if (!env) {
    TESSERA_CHECK(!g_mpi_finalized, "MPI was finalized at interpreter exit; no new Trainer can start");
    env = std::make_unique<MpiEnvironment>();
  }
  return *env;
}

void finalize_mpi() {
  if (mpi_environment()) {
    mpi_environment().reset();
    g_mpi_finalized = true;
  }
}

// As `tessera plan`: model.vocab as a number (chars: the distinct characters of the data file).
int64_t resolve_vocab(const Config& c) {
  const std::string& v = c.model.vocab;
  if (v == "bytes") return 256;
  if (v == "chars") return static_cast<int64_t>(Vocabulary::chars(read_file(c.data.path)).size());
  return std::stoll(v);  // validated by the config loader
}

py::object json_to_python(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

// tessera.plan(config, world, cluster=None, memory_cap_gib=0): the best layout that
// `tessera plan CONFIG --world N --cluster FILE` ranks first, as a dict (the JSON of
// `tessera plan --json`) plus "label" and "overrides" (the --set arguments to run it).
// cluster: a cluster file (configs/clusters/*.yaml, or a calibration cache .json); None:
// configs/clusters/cpu_2core.yaml of the source tree this module was built from. Nothing is
// measured here (no calibration), so the result does not depend on the machine's load.
py::dict plan_best(const Config& config, int world, const std::optional<std::string>& cluster_path,
                   double memory_cap_gib) {
  TESSERA_REQUIRE(world >= 1, "plan: world must be >= 1 (got {})", world);
  const std::string path = cluster_path ? *cluster_path : std::string(TESSERA_SOURCE_DIR) + "/configs/clusters/cpu_2core.yaml";
  const ClusterModel cluster = load_cluster(path);
  SearchOptions so = search_options_from_config(config, world);
  so.memory_cap = memory_cap_gib * 1024.0 * 1024.0 * 1024.0;
  so.micro_batch_sizes = {1, 2, 4, 8, config.train.micro_batch_size};
  const CostModel cost(cluster, so.precision != "fp32");
  const SearchResult result = search_layouts(config.model, resolve_vocab(config), cost, so);
  TESSERA_REQUIRE(!result.plans.empty(), "{}: no layout for world {} is valid and fits the memory cap on {} ({} rejected)",
                  config.source, world, cluster.name, result.rejected.size());
  const PartitionPlan& best = result.plans.front();
  py::dict d = json_to_python(to_json(best)).cast<py::dict>();
  d["label"] = best.label();
  d["overrides"] = plan_overrides(best);
  d["evaluated"] = result.evaluated;
  d["rejected"] = result.rejected.size();
  return d;
}

py::dict step_dict(const StepResult& r) {
  py::dict d;
  d["step"] = r.step;
  d["loss"] = r.loss;
  d["lr"] = r.lr;
  d["grad_norm"] = r.grad_norm;
  d["step_ms"] = r.step_ms;
  d["skipped"] = r.skipped;
  return d;
}

// The Python callables as TrainerCallbacks. The trainer runs with the GIL released, so each
// call takes it; a Python exception propagates out of the trainer call as itself.
TrainerCallbacks python_callbacks(const py::object& on_step, const py::object& on_eval,
                                  const py::object& on_checkpoint) {
  TrainerCallbacks c;
  if (!on_step.is_none()) {
    c.on_step = [f = on_step](const StepResult& r) {
      py::gil_scoped_acquire gil;
      f(step_dict(r));
    };
  }
  if (!on_eval.is_none()) {
    c.on_eval = [f = on_eval](int64_t step, double val_loss) {
      py::gil_scoped_acquire gil;
      f(step, val_loss);
    };
  }
  if (!on_checkpoint.is_none()) {
    c.on_checkpoint = [f = on_checkpoint](int64_t step, const std::string& step_dir) {
      py::gil_scoped_acquire gil;
      f(step, step_dir);
    };
  }
  return c;
}

// A Trainer with everything it refers to, destroyed in reverse order of construction.
class PyTrainer {
 public:
  PyTrainer(const Config& config_in, const py::object& on_step, const py::object& on_eval,
            const py::object& on_checkpoint)
      : config_(config_in) {
    MpiEnvironment& env = ensure_mpi();
    const int world_size = env.world_size();
    check_runtime_support(config_);
    validate_for_world(config_, world_size);
    spdlog::set_level(spdlog::level::from_str(config_.log.level));
    discover_rank_with_mpi();  // launcher variables checked against MPI
    world_ = MpiCommunicator::world(config_.parallel.timeout_s);
    omp_set_num_threads(resolve_threads(config_.train.threads, ranks_on_this_node(world_->mpi_comm())));
    grid_ = std::make_unique<ParallelGrid>(*world_, config_.parallel.tensor_model_parallel_size,
                                           config_.parallel.pipeline_model_parallel_size,
                                           resolved_data_parallel_size(config_, world_size));
    data_ = std::make_unique<Dataset>(load_dataset(config_.data, config_.model.vocab, config_.model.seq_length));
    TrainerOptions options;
    options.config_yaml = config_to_yaml(config_);
    options.callbacks = python_callbacks(on_step, on_eval, on_checkpoint);
    log_with_spdlog(options.callbacks, world_->rank() == 0);
    trainer_ = std::make_unique<Trainer>(config_, *data_, parallel_groups(*grid_, config_.parallel.sequence_parallel),
                                         options);
  }

  py::dict step() {
    StepResult r;
    {
      py::gil_scoped_release release;
      r = trainer_->train_step();
    }
    return step_dict(r);
  }
  double forward_backward() {
    py::gil_scoped_release release;
    return trainer_->forward_backward();
  }
  py::dict optimizer_step() {
    StepResult r;
    {
      py::gil_scoped_release release;
      r = trainer_->optimizer_step();
    }
    return step_dict(r);
  }

  double evaluate() {
    py::gil_scoped_release release;
    return trainer_->evaluate();
  }
  void fit() {
    py::gil_scoped_release release;
    trainer_->fit();
  }
  std::string save(const std::optional<std::string>& dir) {
    py::gil_scoped_release release;
    return dir ? trainer_->save(*dir) : trainer_->save();
  }
  bool resume() {
    py::gil_scoped_release release;
    return trainer_->resume();
  }

  // name -> numpy view of this rank's shard (no copy; writes go into the model).
  py::dict parameters() const {
    py::dict out;
    for (Parameter* p : trainer_->parameters()) out[py::str(p->name)] = tensor_view(p->value, p->name);
    return out;
  }

  // name -> {"global_shape", "local_shape"} for reassembling shards.
  py::dict parameter_shapes() const {
    py::dict out;
    for (Parameter* p : trainer_->parameters()) {
      py::dict d;
      d["global_shape"] = py::tuple(py::cast(p->global_shape));
      d["local_shape"] = py::tuple(py::cast(p->value.shape()));
      out[py::str(p->name)] = d;
    }
    return out;
  }

  int rank() const { return world_->rank(); }
  int world_size() const { return world_->size(); }
  int64_t current_step() const { return trainer_->step(); }
  int dp_rank() const { return grid_->dp_rank(); }
  int tp_rank() const { return grid_->tp_rank(); }
  int pp_rank() const { return grid_->pp_rank(); }
  const Config& config() const { return config_; }

  // A numpy array over the tensor's memory; its base is a capsule holding a Tensor that
  // shares the storage, so the memory outlives the trainer while the array is alive.
  static py::array tensor_view(const Tensor& t, const std::string& name) {
    TESSERA_CHECK(t.device().kind == DeviceKind::CPU, "parameter '{}' is on a CUDA device: no numpy view", name);
    py::dtype dtype;
    switch (t.dtype()) {
      case DType::F32: dtype = py::dtype::of<float>(); break;
      case DType::I32: dtype = py::dtype::of<int32_t>(); break;
      case DType::F16: dtype = py::dtype("float16"); break;
      case DType::BF16:  // numpy has no bfloat16: the raw bits
      case DType::U16: dtype = py::dtype::of<uint16_t>(); break;
    }
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides(shape.size());
    py::ssize_t stride = static_cast<py::ssize_t>(dtype_size(t.dtype()));
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
      strides[i] = stride;
      stride *= shape[i];
    }
    auto* keep = new Tensor(t);
    py::capsule base(keep, [](void* p) { delete static_cast<Tensor*>(p); });
    return py::array(dtype, shape, strides, t.data<char>(), base);
  }

 private:
  Config config_;
  std::unique_ptr<MpiCommunicator> world_;
  std::unique_ptr<ParallelGrid> grid_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace
}  // namespace tessera

PYBIND11_MODULE(tessera, m) {
  using namespace tessera;
  m.doc() = "Tessera: model-parallel training driven from Python (run under mpirun -np N python3 ...)";
  m.attr("__version__") = TESSERA_VERSION;

  static py::exception<Error> error(m, "Error");
  static py::exception<InputError> input_error(m, "InputError", error.ptr());
  // Translators run most recent first: InputError before its base Error.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(input_error.ptr(), e.what());
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  py::class_<ModelConfig>(m, "ModelConfig")
      .def_readwrite("arch", &ModelConfig::arch)
      .def_readwrite("num_layers", &ModelConfig::num_layers)
      .def_readwrite("hidden_size", &ModelConfig::hidden_size)
      .def_readwrite("num_attention_heads", &ModelConfig::num_attention_heads)
      .def_readwrite("ffn_hidden_size", &ModelConfig::ffn_hidden_size)
      .def_readwrite("seq_length", &ModelConfig::seq_length)
      .def_readwrite("vocab", &ModelConfig::vocab);
  py::class_<ParallelConfig>(m, "ParallelConfig")
      .def_readwrite("tensor_model_parallel_size", &ParallelConfig::tensor_model_parallel_size)
      .def_readwrite("pipeline_model_parallel_size", &ParallelConfig::pipeline_model_parallel_size)
      .def_readwrite("data_parallel_size", &ParallelConfig::data_parallel_size)
      .def_readwrite("schedule", &ParallelConfig::schedule)
      .def_readwrite("virtual_stages", &ParallelConfig::virtual_stages)
      .def_readwrite("recompute", &ParallelConfig::recompute)
      .def_readwrite("sequence_parallel", &ParallelConfig::sequence_parallel)
      .def_readwrite("zero_stage", &ParallelConfig::zero_stage);
  py::class_<OptimizerConfig>(m, "OptimizerConfig")
      .def_readwrite("lr", &OptimizerConfig::lr)
      .def_readwrite("min_lr", &OptimizerConfig::min_lr)
      .def_readwrite("warmup_steps", &OptimizerConfig::warmup_steps)
      .def_readwrite("weight_decay", &OptimizerConfig::weight_decay)
      .def_readwrite("grad_clip", &OptimizerConfig::grad_clip);
  py::class_<TrainConfig>(m, "TrainConfig")
      .def_readwrite("micro_batch_size", &TrainConfig::micro_batch_size)
      .def_readwrite("global_batch_size", &TrainConfig::global_batch_size)
      .def_readwrite("max_steps", &TrainConfig::max_steps)
      .def_readwrite("seed", &TrainConfig::seed)
      .def_readwrite("precision", &TrainConfig::precision)
      .def_readwrite("threads", &TrainConfig::threads)
      .def_readwrite("eval_interval", &TrainConfig::eval_interval)
      .def_readwrite("eval_iters", &TrainConfig::eval_iters)
      .def_readwrite("optimizer", &TrainConfig::optimizer);
  py::class_<DataConfig>(m, "DataConfig")
      .def_readwrite("path", &DataConfig::path)
      .def_readwrite("format", &DataConfig::format)
      .def_readwrite("val_fraction", &DataConfig::val_fraction);
  py::class_<CheckpointConfig>(m, "CheckpointConfig")
      .def_readwrite("dir", &CheckpointConfig::dir)
      .def_readwrite("interval", &CheckpointConfig::interval)
      .def_readwrite("keep", &CheckpointConfig::keep)
      .def_readwrite("resume", &CheckpointConfig::resume);
  py::class_<LogConfig>(m, "LogConfig")
      .def_readwrite("interval", &LogConfig::interval)
      .def_readwrite("metrics", &LogConfig::metrics)
      .def_readwrite("trace", &LogConfig::trace)
      .def_readwrite("level", &LogConfig::level);

  py::class_<Config>(m, "Config",
                     "A validated run config. Fields are attributes (config.train.max_steps); edits made in "
                     "Python are validated again when a Trainer starts. Prefer overrides: they go through "
                     "the loader's checks with messages naming the key.")
      .def_static("from_yaml", &load_config, py::arg("path"), py::arg("overrides") = std::vector<std::string>{},
                  "Load a YAML config with 'dotted.key=value' overrides (as tessera train --set)")
      .def_static("from_string", &parse_config_string, py::arg("yaml_text"), py::arg("source_name") = "<string>",
                  py::arg("overrides") = std::vector<std::string>{})
      .def("to_yaml", &config_to_yaml, "The resolved config as YAML (every field)")
      .def("validate", &validate_config)
      .def("validate_for_world", &validate_for_world, py::arg("world_size"))
      .def_readonly("source", &Config::source)
      .def_readwrite("model", &Config::model)
      .def_readwrite("parallel", &Config::parallel)
      .def_readwrite("train", &Config::train)
      .def_readwrite("data", &Config::data)
      .def_readwrite("checkpoint", &Config::checkpoint)
      .def_readwrite("log", &Config::log)
      .def("__repr__", [](const Config& c) { return "<tessera.Config " + c.source + ">"; });

  m.def("plan", &plan_best, py::arg("config"), py::arg("world"), py::arg("cluster") = py::none(),
        py::arg("memory_cap_gib") = 0.0,
        "The best parallel layout for `world` ranks (as `tessera plan --cluster FILE`), as a dict. "
        "cluster: a cluster file; None = configs/clusters/cpu_2core.yaml. memory_cap_gib 0 = the cluster's.");

  py::class_<PyTrainer>(m, "Trainer",
                        "Sets up MPI (once per process), the parallel grid, the data and the model, as "
                        "`tessera train` does. Collective: every rank constructs it and calls step() etc. in step.")
      .def(py::init<const Config&, const py::object&, const py::object&, const py::object&>(), py::arg("config"),
           py::arg("on_step") = py::none(), py::arg("on_eval") = py::none(), py::arg("on_checkpoint") = py::none(),
           "Callbacks, called on every rank: on_step(dict as step() returns), on_eval(step, val_loss), "
           "on_checkpoint(step, step_dir)")
      .def("step", &PyTrainer::step, "One optimizer step: {step, loss, lr, grad_norm, step_ms, skipped}")
      .def("forward_backward", &PyTrainer::forward_backward,
           "Forward and backward of the current step's batch, gradients averaged over dp; the step's loss")
      .def("optimizer_step", &PyTrainer::optimizer_step,
           "Clip, update and advance after forward_backward(); the dict step() returns")
      .def("evaluate", &PyTrainer::evaluate, "Mean validation loss over train.eval_iters batches")
      .def("fit", &PyTrainer::fit, "The CLI's loop to train.max_steps (logging, metrics, eval, checkpoints)")
      .def("save", &PyTrainer::save, py::arg("dir") = py::none(),
           "Checkpoint the current step into dir (default checkpoint.dir); the step directory")
      .def("resume", &PyTrainer::resume, "Load the newest checkpoint in checkpoint.dir; False when none")
      .def("parameters", &PyTrainer::parameters, "name -> numpy view (no copy) of this rank's shard")
      .def("parameter_shapes", &PyTrainer::parameter_shapes)
      .def_property_readonly("rank", &PyTrainer::rank)
      .def_property_readonly("world_size", &PyTrainer::world_size)
      .def_property_readonly("current_step", &PyTrainer::current_step)
      .def_property_readonly("dp_rank", &PyTrainer::dp_rank)
      .def_property_readonly("tp_rank", &PyTrainer::tp_rank)
      .def_property_readonly("pp_rank", &PyTrainer::pp_rank)
      .def_property_readonly("config", &PyTrainer::config);

  m.def("_finalize_mpi", &finalize_mpi);
  py::module_::import("atexit").attr("register")(m.attr("_finalize_mpi"));
}
