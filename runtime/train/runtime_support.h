// Which config features this build of the runtime can execute. The config schema accepts the
// whole documented format; features whose runtime has not landed yet are refused here with
// one clear line instead of being silently ignored. The Trainer calls it, so every entry point
// (the CLI, Python, an embedding program) gets the same refusals; the CLI calls it earlier too,
// before any rank does work.
#pragma once

#include <string>

#include "core/config.h"

namespace tessera {

// Throws InputError naming the field when the config asks for something not implemented.
void check_runtime_support(const Config& config);
// The part of it for train.device = cuda: the features the trainer does not run on a GPU yet.
void check_cuda_support(const Config& config, const std::string& source);

}  // namespace tessera
