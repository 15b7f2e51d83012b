// tessera.Trainer in Python: the runtime's bring-up (runtime/train/training_session.h, as
// `tessera train` uses it) and the Trainer, with Python callables as its callbacks and the
// parameters as numpy views.
#pragma once

#include <pybind11/pybind11.h>

namespace tessera::python {

// Registers tessera.Trainer and the process's MPI lifetime (finalized at interpreter exit).
void bind_trainer(pybind11::module_& m);

}  // namespace tessera::python
