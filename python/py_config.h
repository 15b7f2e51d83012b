// tessera.Config in Python: its fields come from the config schema (launcher/config_schema.cc),
// not from a list kept here, so every field the YAML accepts is an attribute
// (config.train.optimizer.lr), read and written through the schema's own converters.
#pragma once

#include <pybind11/pybind11.h>

namespace tessera::python {

// Registers tessera.Config, tessera.ConfigSection and tessera.config_keys().
void bind_config(pybind11::module_& m);

}  // namespace tessera::python
