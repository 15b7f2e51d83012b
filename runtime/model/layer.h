// The Layer interface: forward/backward over one microbatch, with the activations needed by
// backward saved per microbatch (so a pipeline schedule can keep several in flight).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/model/parameter.h"
#include "runtime/tensor.h"

namespace tessera {

class Compute;

// What a layer needs to know about the microbatch it is processing.
struct MicrobatchContext {
  int microbatch = 0;     // key of the saved activations
  Tensor tokens;          // I32 [B, T]: read by the embedding
  Tensor targets;         // I32 [B, T]: read by the head (loss)
  float loss_scale = 1.f; // d(total loss)/d(this microbatch's mean loss), used by the head
  bool training = true;   // false: forward only, nothing saved
  // The backend and precision the layers compute with (runtime/compute/compute.h); borrowed,
  // never null when a layer runs.
  const Compute* compute = nullptr;
  const Compute& math() const {
    TESSERA_CHECK(compute != nullptr, "microbatch {}: no Compute in the context", microbatch);
    return *compute;
  }
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual const std::string& name() const = 0;
  // x is [rows, features] (or ignored by the embedding, which reads ctx.tokens). The head
  // returns the microbatch's mean loss as a [1] tensor.
  virtual Tensor forward(const Tensor& x, const MicrobatchContext& ctx) = 0;
  // Consumes the activations saved by forward for ctx.microbatch; returns d(input).
  virtual Tensor backward(const Tensor& dy, const MicrobatchContext& ctx) = 0;
  virtual std::vector<Parameter*> parameters() = 0;
  // Parameters this layer computes with that another layer owns and lists (a head tied to the
  // embedding table): ZeRO-2/3 gathers them for this layer's forward and backward too.
  virtual std::vector<Parameter*> borrowed_parameters() { return {}; }
  // Shapes of this rank's input and output activations for a microbatch of B sequences of T
  // tokens (what a pipeline stage boundary sends and receives). Row counts are B * T, divided
  // by tp where sequence parallelism shards the rows.
  virtual Shape input_shape(int64_t B, int64_t T) const = 0;
  virtual Shape output_shape(int64_t B, int64_t T) const = 0;
  // Microbatches whose activations are currently held.
  virtual int saved_count() const = 0;
};

// Per-microbatch storage of saved activations for a layer.
template <typename Saved>
class ActivationStash {
 public:
  void put(int microbatch, Saved saved) {
    TESSERA_CHECK(stash_.emplace(microbatch, std::move(saved)).second,
                  "activations of microbatch {} saved twice", microbatch);
  }
  Saved take(int microbatch) {
    auto it = stash_.find(microbatch);
    TESSERA_CHECK(it != stash_.end(), "no saved activations for microbatch {}", microbatch);
    Saved s = std::move(it->second);
    stash_.erase(it);
    return s;
  }
  int size() const { return static_cast<int>(stash_.size()); }

 private:
  std::map<int, Saved> stash_;
};

}  // namespace tessera
