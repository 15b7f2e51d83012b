// The bring-up of a training process, in the order its steps depend on each other.
#include "runtime/train/training_session.h"

#include <omp.h>

#include <algorithm>

#include "partitioner/layout_rules.h"
#include "partitioner/machine_model.h"
#include "partitioner/memory_cap.h"
#include "runtime/comm/agreement.h"
#include "runtime/comm/threads.h"
#include "runtime/data/tokenizer.h"

namespace tessera {

TrainingSession::TrainingSession(const Config& config, MpiEnvironment& env, SessionOptions options)
    : config_(config), options_(std::move(options)) {
  rank_ = discover_rank_with_mpi();  // the launcher's variables checked against MPI
  world_ = MpiCommunicator::world(config_.parallel.timeout_s);
  const int local_ranks = ranks_on_this_node(world_->mpi_comm());
  omp_set_num_threads(resolve_threads(config_.train.threads, local_ranks));
  const ParallelConfig& p = config_.parallel;
  grid_ = std::make_unique<ParallelGrid>(
      *world_, p.tensor_model_parallel_size, p.pipeline_model_parallel_size,
      resolve_data_parallel_size(p.data_parallel_size, env.world_size(), p.tensor_model_parallel_size,
                                 p.pipeline_model_parallel_size));
  if (config_.train.device == "cuda") start_cuda(local_ranks);
  Vocabulary vocab;
  if (options_.data != nullptr) {
    vocab = options_.data->vocabulary();
  } else {
    check_data_tokenizer(config_);
    dataset_ = std::make_unique<Dataset>(load_dataset(config_.data, config_.model.vocab, config_.model.seq_length));
    vocab = dataset_->vocab;
  }
  graph_ = build_layer_graph(config_.model, vocab.size(), config_.train.micro_batch_size,
                             options_.trainer.custom_layers);
  decide_partition(options_.machine);
}

// Before any work: every rank checks its own GPU (ranks on other nodes may see other devices),
// and all stop together with the first refusal. Then the CUDA runtime on the chosen device, and
// the NCCL groups in the grid's shape (one NCCL rank per MPI rank, the same colours).
void TrainingSession::start_cuda(int local_ranks) {
  const TrainConfig& t = config_.train;
  int device = 0;
  run_agreed(world_.get(), [&] {
    device = choose_cuda_device(options_.cuda, rank_.rank, rank_.local_rank, local_ranks);
    TESSERA_REQUIRE(options_.start_cuda != nullptr,
                    "train.device = cuda: this program does not link the CUDA runtime (tessera_device_runtime) or "
                    "did not pass SessionOptions::start_cuda");
  });
  cuda_ = options_.start_cuda(device, parse_precision(t.precision), t.allow_tf32, *world_, config_.parallel.timeout_s);
  nccl_grid_ = std::make_unique<ParallelGrid>(*cuda_.world, grid_->tp_size(), grid_->pp_size(), grid_->dp_size());
}

void TrainingSession::decide_partition(const std::optional<ClusterModel>& given) {
  // Every rank balances by FLOPs first, so a split that cannot be made fails on all of them.
  partition_.partition = stage_partition(config_.parallel, graph_);
  if (world_->rank() == 0) {
    PartitionInputs in;
    in.world = world_->size();
    in.vocab = graph_.vocab_size;
    in.custom_layers = options_.trainer.custom_layers;
    std::optional<ClusterModel> machine = given;
    if (!machine) machine = calibrated_machine(in.no_machine_reason);
    if (machine) in.machine = &*machine;
    partition_ = choose_partition(config_, graph_, in);
  }
  // Rank 0's split on every rank: nodes may hold different calibration caches, and every
  // pipeline rank must cut the layers at the same places.
  Tensor t = Tensor::empty({static_cast<int64_t>(partition_.partition.size())}, DType::I32);
  std::copy(partition_.partition.begin(), partition_.partition.end(), t.i32());
  world_->broadcast(t, 0);
  partition_.partition.assign(t.i32(), t.i32() + t.numel());
  // Every rank decides the same from the same inputs, so all stop together, before the trainer
  // allocates anything.
  check_memory_cap(config_, graph_, world_->size(), partition_.partition);
}

Trainer& TrainingSession::start(TrainerCallbacks callbacks) {
  TESSERA_CHECK(!trainer_, "TrainingSession::start: the trainer is already started");
  // The trainer runs the decided partition; checkpoints keep the config as written.
  Config run_config = config_;
  run_config.parallel.partition = partition_.partition;
  TrainerOptions options = options_.trainer;
  options.callbacks = std::move(callbacks);
  ParallelGroups groups = parallel_groups(nccl_grid_ ? *nccl_grid_ : *grid_, config_.parallel.sequence_parallel);
  if (nccl_grid_) {
    groups.world = world_.get();  // stop flags, errors and checkpoints agree over MPI
    groups.host_dp = &grid_->dp();  // the outer sync's host-side link
    options.compute = cuda_.compute;
  }
  if (options_.data != nullptr) {
    trainer_ = std::make_unique<Trainer>(run_config, *options_.data, groups, std::move(options));
  } else {
    trainer_ = std::make_unique<Trainer>(run_config, *dataset_, groups, std::move(options));
  }
  return *trainer_;
}

Trainer& TrainingSession::trainer() {
  TESSERA_CHECK(trainer_ != nullptr, "TrainingSession::trainer: start() was not called");
  return *trainer_;
}

}  // namespace tessera
