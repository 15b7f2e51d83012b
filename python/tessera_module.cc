// Python bindings: `import tessera`. A Python research loop drives the runtime under
// `mpirun -np N python3 train.py`:
//
//   config = tessera.Config.from_yaml("configs/tests/gpt_tiny.yaml", ["train.max_steps=20"])
//   trainer = tessera.Trainer(config)            # MPI, the parallel grid, data, model
//   for _ in range(20): m = trainer.step()      # {"step", "loss", "lr", "grad_norm", "step_ms", ...}
//   tessera.Trainer(config, on_step=f, on_eval=g, on_checkpoint=h)   # called by fit() and step()
//   w = trainer.parameters()["wte.weight"]      # numpy view of this rank's shard, no copy
//
// A Trainer is set up by the runtime's bring-up, as `tessera train` is
// (runtime/train/training_session.h), without the CLI's signal handlers: Python owns the
// signals. Config fields come from the config schema (py_config.cc), the Trainer's binding is
// py_trainer.cc, plan() is here. tessera::Error and tessera::InputError arrive as
// tessera.Error and its subclass tessera.InputError, with the same one-line message.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "core/error.h"
#include "launcher/cluster_file.h"
#include "partitioner/layout_search.h"
#include "partitioner/partition_plan.h"
#include "python/py_config.h"
#include "python/py_trainer.h"
#include "runtime/data/dataset.h"

#ifndef TESSERA_SOURCE_DIR
#define TESSERA_SOURCE_DIR "."
#endif

namespace py = pybind11;

namespace tessera {
namespace {

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
  const SearchResult result = search_layouts(config.model, vocab_size_of(config.model.vocab, config.data), cost, so);
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

  python::bind_config(m);

  m.def("plan", &plan_best, py::arg("config"), py::arg("world"), py::arg("cluster") = py::none(),
        py::arg("memory_cap_gib") = 0.0,
        "The best parallel layout for `world` ranks (as `tessera plan --cluster FILE`), as a dict. "
        "cluster: a cluster file; None = configs/clusters/cpu_2core.yaml. memory_cap_gib 0 = the cluster's.");

  python::bind_trainer(m);
}
