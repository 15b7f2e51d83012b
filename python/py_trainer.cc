// tessera.Trainer: MPI for the process, the bring-up and the Trainer, callbacks, numpy views.
#include "python/py_trainer.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "launcher/config_loader.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/train/device_runtime_session.h"
#include "runtime/train/runtime_support.h"
#include "runtime/train/training_session.h"

namespace py = pybind11;

namespace tessera::python {
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
    // The loader's rules for this world, before any rank does work (the Trainer checks the
    // runtime's refusals and the layout rules again).
    check_runtime_support(config_);
    validate_for_world(config_, env.world_size());
    spdlog::set_level(spdlog::level::from_str(config_.log.level));
    SessionOptions options;
    options.trainer.config_yaml = config_to_yaml(config_);
    use_device_runtime(config_, options);  // this module links tessera_device_runtime, as `tessera`
    session_ = std::make_unique<TrainingSession>(config_, env, std::move(options));
    TrainerCallbacks callbacks = python_callbacks(on_step, on_eval, on_checkpoint);
    log_with_spdlog(callbacks, session_->world().rank() == 0);
    trainer_ = &session_->start(std::move(callbacks));
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

  int rank() const { return session_->world().rank(); }
  int world_size() const { return session_->world().size(); }
  int64_t current_step() const { return trainer_->step(); }
  int dp_rank() const { return session_->grid().dp_rank(); }
  int tp_rank() const { return session_->grid().tp_rank(); }
  int pp_rank() const { return session_->grid().pp_rank(); }
  // Layers per global pipeline stage: the bring-up's decision, as `tessera train` makes it.
  std::vector<int> partition() const { return session_->partition().partition; }
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
  std::unique_ptr<TrainingSession> session_;
  Trainer* trainer_ = nullptr;  // owned by the session
};

}  // namespace

void bind_trainer(py::module_& m) {
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
      .def_property_readonly("partition", &PyTrainer::partition,
                             "Layers per global pipeline stage, as decided for this run (same as tessera train)")
      .def_property_readonly("config", &PyTrainer::config);

  m.def("_finalize_mpi", &finalize_mpi);
  py::module_::import("atexit").attr("register")(m.attr("_finalize_mpi"));
}

}  // namespace tessera::python
