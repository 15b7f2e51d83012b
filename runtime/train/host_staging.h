// Checkpoint I/O for a trainer whose state lives on a GPU. The checkpoint code reads and writes
// host tensors only, so a save or load of device parameters and optimizer moments goes through
// host twins: made (and filled from the device, for a save) here, copied back to the device
// after a load. A state already on the host is left as it is, so the CPU path is unchanged.
#pragma once

#include <vector>

#include "runtime/checkpoint/checkpoint.h"

namespace tessera {

class HostStaging {
 public:
  // Points state.params and state.moments at host twins of their device tensors; `fill` copies
  // the device contents into them (a save), else they are fresh buffers for a load to fill. A
  // save's dp-sharded ranges (state.owned) are replaced by host copies.
  HostStaging(CheckpointState& state, bool fill);
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  // After a load: the twins' values and moments copied into the device tensors. Pruning masks
  // cannot follow them there (the GPU trainer does not prune), so a checkpoint with masks is
  // refused in one line.
  void write_back();

 private:
  std::vector<Parameter*> device_params_;
  std::vector<OptimizerMoments*> device_moments_;
  std::vector<Parameter> params_;  // reserved up front: state.params points into it
  std::vector<OptimizerMoments> moments_;
};

}  // namespace tessera
