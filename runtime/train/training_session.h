// The one bring-up path of a training process, used by `tessera train`, the Python module and
// embedding programs (examples/embed_trainer): with MPI up (an MpiEnvironment), it discovers
// the rank (launcher variables checked against MPI), makes the world communicator, sets the
// threads per rank, builds the parallel grid, loads the data (or takes the program's own
// DataSource), decides the stage partition once (rank 0, partitioner/partition_choice.h) and
// broadcasts it, then starts the Trainer with that partition.
//
//   TrainingSession session(config, env, {});     // collective
//   ...print what session.partition() decided...
//   Trainer& trainer = session.start(callbacks);  // collective
//   trainer.fit();
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "partitioner/cost_model.h"
#include "partitioner/partition_choice.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/parallel_grid.h"
#include "runtime/comm/rank_discovery.h"
#include "runtime/compute/cuda_compute.h"
#include "runtime/data/dataset.h"
#include "runtime/device/device_choice.h"
#include "runtime/train/trainer.h"

namespace tessera {

struct SessionOptions {
  // The machine model for `partition: auto` and the prediction; unset: the calibration cache
  // (partitioner/machine_model.h), so every entry point decides on the same model.
  std::optional<ClusterModel> machine;
  // The program's own data (borrowed, must outlive the session); null: config.data's Dataset.
  DataSource* data = nullptr;
  // train.device = cuda: what the program's build and machine offer (the `tessera` command fills
  // it from runtime/compute/cuda_compute.h); the default is a build without CUDA, so a program
  // that does not link the CUDA runtime refuses device cuda in one line.
  CudaRuntimeFacts cuda;
  // train.device = cuda: starts the rank's CUDA runtime on the chosen device (the `tessera`
  // command gives start_cuda_training of runtime/compute/cuda_compute.h, which a program gets
  // by linking tessera_device_runtime). Unset, device cuda is refused as a build without CUDA.
  CudaTraining (*start_cuda)(int device_index, Precision precision, bool allow_tf32, MpiCommunicator& host,
                             double timeout_s) = nullptr;
  // What TrainerOptions holds besides the callbacks (given to start()): the resolved config
  // saved in checkpoints, the stop flag, and an embedding program's custom layers and registry.
  TrainerOptions trainer;
};

class TrainingSession {
 public:
  // Collective over MPI_COMM_WORLD. The config must already be valid for the world size (the
  // caller's loader checks it); the runtime's own refusals and layout rules are checked again
  // by the Trainer. InputError, the same on every rank, for bad data or a split that cannot be made.
  TrainingSession(const Config& config, MpiEnvironment& env, SessionOptions options);
  TrainingSession(const TrainingSession&) = delete;
  TrainingSession& operator=(const TrainingSession&) = delete;

  // Starts the trainer (collective) with these callbacks; once.
  Trainer& start(TrainerCallbacks callbacks);

  const Config& config() const { return config_; }
  const RankInfo& rank_info() const { return rank_; }
  MpiCommunicator& world() { return *world_; }
  ParallelGrid& grid() { return *grid_; }
  // The built-in Dataset; null when the program gave its own DataSource.
  const Dataset* dataset() const { return dataset_.get(); }
  // The layer graph the partition was decided for (custom layers included).
  const LayerGraph& graph() const { return graph_; }
  // The decision: partition on every rank; source and prediction on world rank 0 only.
  const PartitionChoice& partition() const { return partition_; }
  Trainer& trainer();

 private:
  // train.device = cuda: the device checks, then this rank's CUDA runtime and the NCCL groups.
  void start_cuda(int local_ranks);
  void decide_partition(const std::optional<ClusterModel>& machine);

  Config config_;
  SessionOptions options_;
  RankInfo rank_;
  std::unique_ptr<MpiCommunicator> world_;
  std::unique_ptr<ParallelGrid> grid_;
  // train.device = cuda: the rank's CUDA compute, and the NCCL world and the grid split from it
  // (the trainer's tp/dp/pp groups; its world stays MPI, for host-side agreement).
  CudaTraining cuda_;
  std::unique_ptr<ParallelGrid> nccl_grid_;
  std::unique_ptr<Dataset> dataset_;
  LayerGraph graph_;
  PartitionChoice partition_;
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace tessera
