// Reading and writing safetensors files (checkpoints, PyTorch reference fixtures).
// Layout: u64 little-endian header length N, N bytes of JSON header naming each tensor's
// dtype, shape and [begin, end) byte range in the data section, then the raw row-major
// little-endian data.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;        // host tensors, owning their storage
  std::map<std::string, std::string> metadata;  // the header's "__metadata__", if any
};

// Reads and validates a whole file. Throws tessera::InputError with one line naming the
// file and the rule it breaks when the file is not a well-formed safetensors file.
SafetensorsFile read_safetensors(const std::string& path);

// A file's header, validated as read_safetensors validates it, with the tensors read one at a
// time when asked for: a checkpoint load holds the tensor it needs, not the whole file.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(std::string path);
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  // The tensor, read from the file now; InputError naming the file when it has no such tensor
  // or can no longer be read.
  Tensor read(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  struct Located {
    DType dtype;
    Shape shape;
    uint64_t offset;  // in the file
  };
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Located> entries_;
};

// Writes host tensors (any dtype, any shape including 0-d and empty) and string metadata.
// Crash safe: the file is written to `path + ".tmp"`, fsynced, renamed over `path`, and the
// directory is fsynced, so `path` always holds either the old or the complete new file.
// Throws tessera::Error when the file cannot be written.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera
