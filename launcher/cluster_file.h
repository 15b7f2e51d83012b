// Cluster files: the machine model of `tessera plan --cluster FILE`, `tessera train --cluster`
// and tessera.plan(): configs/clusters/*.yaml, a cluster in JSON, or a calibration cache.
#pragma once

#include <string>

#include "partitioner/cost_model.h"

namespace tessera {

// A cluster from configs/clusters/*.yaml (or .json), or a calibration cache (JSON with a
// "cluster" entry). InputError naming the file and the field on anything malformed.
ClusterModel load_cluster(const std::string& path);

}  // namespace tessera
