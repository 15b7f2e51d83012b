// Megatron's embedding group for a pipeline whose head is tied to the embedding table: the
// first stage holds the table (wte.weight) and the last stage's head a copy
// (Parameter::tied_replica). At the end of each step's schedule, after the last backward and
// before the data-parallel reduction (as Megatron's finalize_model_grads at the end of its
// pipeline schedules), the two stages sum their gradients of the table, so both copies take
// the same update and stay equal: the gradient one rank holding both would have computed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/model/parameter.h"

namespace tessera {

class TiedEmbeddingSync {
 public:
  // Collective over `pp` (every stage calls it): nullptr when no stage holds a tied copy of
  // the table (untied weights, or one stage). `params` are this rank's parameters, on `device`.
  static std::unique_ptr<TiedEmbeddingSync> create(Communicator* pp, const std::vector<Parameter*>& params,
                                                   Device device);

  // On the first and the last stage: sums the table's gradient over both. Nothing elsewhere.
  void reduce_gradients();
  // The same for a part of the gradient that lines up on both stages (ZeRO-2/3: this dp rank's
  // block of the table's unit, zero_units.h).
  void reduce(Tensor& grad);
  // The table or its copy on the first and the last stage; null on the others.
  const Parameter* table() const { return table_; }

 private:
  std::unique_ptr<Communicator> group_;  // the first and the last stage; null on the others
  Parameter* table_ = nullptr;
};

}  // namespace tessera
