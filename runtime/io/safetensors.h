// Reading and writing safetensors files (checkpoints, PyTorch reference fixtures).
// Layout: u64 little-endian header length N, N bytes of JSON header naming each tensor's
// dtype, shape and [begin, end) byte range in the data section, then the raw row-major
// little-endian data.
#pragma once

#include <map>
#include <string>

#include "runtime/tensor.h"

namespace tessera {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;        // host tensors, owning their storage
  std::map<std::string, std::string> metadata;  // the header's "__metadata__", if any
};

// Reads and validates a whole file. Throws tessera::InputError with one line naming the
// file and the rule it breaks when the file is not a well-formed safetensors file.
SafetensorsFile read_safetensors(const std::string& path);

// Writes host tensors (any dtype, any shape including 0-d and empty) and string metadata.
// Crash safe: the file is written to `path + ".tmp"`, fsynced, renamed over `path`, and the
// directory is fsynced, so `path` always holds either the old or the complete new file.
// Throws tessera::Error when the file cannot be written.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera
