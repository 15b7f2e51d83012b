// Tensor-parallel communication as named forward/backward pairs (Megatron's mappings).
// Layers call these and never issue collectives themselves. With no tp group (size 1) every
// function is the identity.
#pragma once

#include "runtime/comm/communicator.h"
#include "runtime/tensor.h"

namespace tessera {

// The tensor-parallel group a layer belongs to. comm may be null when size == 1.
struct TpGroup {
  Communicator* comm = nullptr;
  int rank = 0;
  int size = 1;
  static TpGroup single() { return {}; }
};

// copy-to-tp: identity forward, all-reduce (sum) of the input gradient backward.
Tensor copy_to_tp_forward(const Tensor& x, const TpGroup& tp);
void copy_to_tp_backward(Tensor& dx, const TpGroup& tp);

// reduce-from-tp: all-reduce (sum) of partial outputs forward, identity backward.
void reduce_from_tp_forward(Tensor& y, const TpGroup& tp);
Tensor reduce_from_tp_backward(const Tensor& dy, const TpGroup& tp);

}  // namespace tessera
