// Hands a TrainingSession the CUDA runtime this program links, when its config trains on the GPU:
// the one setup path of `tessera train`, the Python module and embedding programs
// (Tessera::tessera links the device runtime). Header-only: code that never calls it needs no
// device runtime in its link.
#pragma once

#include "core/config.h"
#include "runtime/compute/cuda_compute.h"
#include "runtime/train/training_session.h"

namespace tessera {

// With train.device = cuda: what this build and machine offer (for the session's device
// checks) and the runtime's start function. Nothing otherwise, so a CPU run never touches CUDA.
inline void use_device_runtime(const Config& config, SessionOptions& options) {
  if (config.train.device != "cuda") return;
  options.cuda = {cuda_built(), cuda_devices_visible(), nccl_version_code()};
  options.start_cuda = start_cuda_training;
}

}  // namespace tessera
