// TiedEmbeddingSync (see tied_embeddings.h).
#include "runtime/pipeline/tied_embeddings.h"

#include "core/error.h"
#include "runtime/device/device_memory.h"

namespace tessera {

std::unique_ptr<TiedEmbeddingSync> TiedEmbeddingSync::create(Communicator* pp, const std::vector<Parameter*>& params,
                                                             Device device) {
  if (pp == nullptr || pp->size() == 1) return nullptr;
  // Only the last stage knows whether the head is tied (it holds the copy): agree on it.
  Tensor flag = Tensor::full({1}, 0.f);
  for (const Parameter* p : params) {
    if (p->tied_replica) flag.f32()[0] = 1.f;
  }
  flag = to_device(flag, device);  // the pp group's communicator moves tensors of the compute's device
  pp->all_reduce(flag, ReduceOp::Max);
  if (to_device(flag, Device::cpu()).f32()[0] == 0.f) return nullptr;
  const std::string name = "wte.weight";
  const bool end = pp->rank() == 0 || pp->rank() == pp->size() - 1;
  auto sync = std::make_unique<TiedEmbeddingSync>();
  // Every stage takes part in the split; the middle stages' group (color 1) is never used.
  std::unique_ptr<Communicator> group = pp->split(end ? 0 : 1, pp->rank(), "embedding");
  if (!end) return sync;
  for (Parameter* p : params) {
    if (p->name == name) sync->table_ = p;
  }
  TESSERA_CHECK(sync->table_ != nullptr, "pipeline stage {}: tied weights, but this stage holds no {}", pp->rank(),
                name);
  TESSERA_CHECK(sync->table_->tied_replica == (pp->rank() != 0),
                "pipeline stage {}: {} should be {} here", pp->rank(), name,
                pp->rank() == 0 ? "the embedding's table" : "the head's copy of it");
  sync->group_ = std::move(group);
  return sync;
}

void TiedEmbeddingSync::reduce_gradients() {
  if (group_ != nullptr) reduce(table_->grad);
}

void TiedEmbeddingSync::reduce(Tensor& grad) {
  if (group_ != nullptr) group_->all_reduce(grad, ReduceOp::Sum);
}

}  // namespace tessera
