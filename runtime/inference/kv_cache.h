// The keys and values of one sequence for every layer, so that decoding a token attends to
// the past without recomputing it. Room for the model's context length, allocated up front.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

class InferenceModel;

class KvCache {
 public:
  explicit KvCache(const InferenceModel& model);

  int64_t length() const { return length_; }      // tokens held
  int64_t capacity() const { return capacity_; }  // the model's context length
  void clear() { length_ = 0; }

  // For decode: layer's keys / values, [capacity, A] rows by position (rows >= length unset),
  // and the count of tokens held after a decode step wrote rows [length, length + n).
  float* keys(int layer) const { return keys_[layer].f32(); }
  float* values(int layer) const { return values_[layer].f32(); }
  void advance(int64_t n);

 private:
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  std::vector<Tensor> keys_, values_;
};

}  // namespace tessera
