// Puts every parameter and gradient of a model into two flat buffers (values, grads), in
// backward order (last layer first), padded to a multiple of the data-parallel size. The
// Parameter tensors become views into them, so gradient buckets are contiguous ranges that
// can be reduced without copies, and ZeRO-1 can shard the flat range across dp ranks.
#pragma once

#include <vector>

#include "runtime/model/model.h"

namespace tessera {

struct FlatSegment {
  Parameter* param = nullptr;
  int layer = 0;         // index of the owning layer across the chunks
  int64_t offset = 0;    // in elements, in the flat buffers
  int64_t numel = 0;
};

class FlatParameters {
 public:
  // Rebinds every parameter's value and grad of the model chunks (keeping their contents) into
  // flat storage whose length is padded up to a multiple of `pad_to`, on `device`. Layers are
  // numbered across the chunks in order (chunk 0's layers first). On a GPU every parameter
  // starts at a multiple of 64 elements: cuBLASLt's fused bias needs 16-byte aligned pointers
  // (kernels/cuda/matmul_cuda.h); on the CPU they are packed.
  FlatParameters(const std::vector<Model*>& chunks, int pad_to, Device device = Device::cpu());

  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  int64_t numel() const { return values_.numel(); }  // padded length
  const std::vector<FlatSegment>& segments() const { return segments_; }  // in flat order

 private:
  Tensor values_, grads_;
  std::vector<FlatSegment> segments_;
};

}  // namespace tessera
