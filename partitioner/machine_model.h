// Where the machine model comes from when none is named: the calibration cache that
// `tessera plan --calibrate` writes (JSON). The runtime's bring-up reads it for `partition:
// auto`, so `tessera train`, Python and an embedding program decide on the same machine model.
// (Cluster files in YAML are the launcher's: launcher/cluster_file.h load_cluster.)
#pragma once

#include <optional>
#include <string>

#include "partitioner/cost_model.h"

namespace tessera {

// $XDG_CACHE_HOME/tessera/calibration.json, else ~/.cache/tessera/calibration.json.
std::string default_calibration_path();

// A cluster from a JSON file: a cluster description, or a calibration cache
// ({"tessera_calibration": ..., "cluster": {...}}). InputError naming the file when it is not.
ClusterModel load_cluster_json(const std::string& path);

// The calibration cache when it exists and reads; nullopt otherwise, with the reason (and
// what to run) in `why`. A stale or broken cache costs the prediction, not the run.
std::optional<ClusterModel> calibrated_machine(std::string& why);

}  // namespace tessera
