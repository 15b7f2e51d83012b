// choose_cuda_device: the node-local rank's GPU, or one line saying why there is none.
#include "runtime/device/device_choice.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace tessera {

int choose_cuda_device(const DeviceChoiceInput& in) {
  TESSERA_REQUIRE(in.cuda_built,
                  "train.device = cuda: this tessera was built without CUDA (configure with -DTESSERA_CUDA=ON on a "
                  "machine with the CUDA toolkit)");
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  TESSERA_REQUIRE(in.visible_devices > 0, "train.device = cuda: no CUDA device is visible to rank {}{}", in.rank,
                  visible != nullptr ? fmt::format(" (CUDA_VISIBLE_DEVICES={})", visible) : std::string());
  // NCCL 2.30 lets ranks share a GPU when asked to (NCCL_MULTI_RANK_GPU_ENABLE=1): the device
  // check runs tp 2 on one GPU that way. Otherwise one GPU per rank.
  const char* shared = std::getenv("NCCL_MULTI_RANK_GPU_ENABLE");
  const bool may_share = shared != nullptr && std::string(shared) == "1" && in.nccl_version >= 23000;
  TESSERA_REQUIRE(may_share || in.local_ranks <= in.visible_devices,
                  "train.device = cuda: {} ranks on this node but {} CUDA device{} visible (one GPU per rank)",
                  in.local_ranks, in.visible_devices, in.visible_devices == 1 ? " is" : "s are");
  TESSERA_REQUIRE(in.nccl_version >= kMinNcclVersion,
                  "train.device = cuda: NCCL {}.{}.{} is loaded, the communicator needs 2.18 or newer (ncclCommSplit)",
                  in.nccl_version / 10000, in.nccl_version / 100 % 100, in.nccl_version % 100);
  TESSERA_CHECK(in.local_rank >= 0 && in.local_rank < in.local_ranks, "local rank {} of {}", in.local_rank,
                in.local_ranks);
  return in.local_rank % in.visible_devices;
}

}  // namespace tessera
