// run_agreed: a failure flag reduced over the world, then the first failing rank's message.
#include "runtime/comm/agreement.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>

namespace tessera {

void run_agreed(Communicator* world, const std::function<void()>& work) {
  if (world == nullptr) {
    work();
    return;
  }
  std::string error;
  bool failed = false, input = false;
  try {
    work();
  } catch (const InputError& e) {
    error = e.what();
    failed = input = true;
  } catch (const std::exception& e) {
    error = e.what();
    failed = true;
  }
  // ReduceOp has no Min: the Max of 2 * (size - rank) + input over the failing ranks (0 for
  // the others) names the lowest failing rank and the kind of its error.
  const int n = world->size();
  Tensor first = Tensor::empty({1}, DType::I32);
  first.i32()[0] = failed ? 2 * (n - world->rank()) + (input ? 1 : 0) : 0;
  world->all_reduce(first, ReduceOp::Max);
  if (first.i32()[0] == 0) return;
  const int root = n - first.i32()[0] / 2;
  const bool input_error = first.i32()[0] % 2 == 1;
  Tensor length = Tensor::empty({1}, DType::I32);
  length.i32()[0] = static_cast<int32_t>(error.size());
  world->broadcast(length, root);
  // The communicator moves tensors: the text travels packed four bytes to an I32 word.
  const int64_t bytes = length.i32()[0];
  Tensor text = Tensor::zeros({std::max<int64_t>(1, (bytes + 3) / 4)}, DType::I32);
  if (world->rank() == root) std::memcpy(text.i32(), error.data(), error.size());
  world->broadcast(text, root);
  const std::string message(reinterpret_cast<const char*>(text.i32()), bytes);
  if (input_error) throw AgreedError(message);
  throw Error(fmt::format("on rank {}: {}", root, message));
}

}  // namespace tessera
