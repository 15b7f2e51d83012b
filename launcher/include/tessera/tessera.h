// The public C++ API of Tessera, for programs that embed it: `#include <tessera/tessera.h>`
// and link Tessera::tessera (find_package(Tessera)). docs/embedding.md walks through it.
//
//   Config           core/config.h; from YAML with load_config / parse_config_string, or
//                    filled in code and checked with validate_config / validate_for_world
//   Tensor, Layer, Parameter, ActivationStash, MicrobatchContext, TpGroup and the
//                    tensor-parallel pairs: writing layers
//   LayerGraph, CustomLayerPlacement, LayerRegistry, Model: models with user-defined layers
//   DataSource, DatasetSource, Dataset, Vocabulary: where batches come from
//   Trainer, TrainerOptions, TrainerCallbacks, StepResult: the training loop, whole or by step
//   TrainingSession, SessionOptions: the bring-up `tessera train` and Python use (rank
//                    discovery, world, threads, grid, data, the partition decision, Trainer);
//                    use_device_runtime: train.device = cuda with the CUDA runtime linked
//   MpiEnvironment, MpiCommunicator, Communicator, ParallelGrid, parallel_groups: MPI and
//                    the (tp, dp, pp) groups, always passed explicitly
//   search_layouts, plan_config_layout, CostModel, PartitionPlan: layout search and plans;
//                    choose_partition, layout_violations: the partition decision and layout rules
//   save_checkpoint / load_checkpoint (via Trainer::save / resume), inspect_checkpoint,
//                    export_consolidated, reshard_checkpoint
//   Error, InputError, abort_job: every failure is an exception; the host decides what to do
//
// The umbrella sits with the launcher, the highest layer it includes (YAML config loading). The
// headers below keep their paths in the source tree, so a program may also include just the
// ones it needs.
#pragma once

#include "launcher/config_loader.h"
#include "partitioner/cost_model.h"
#include "partitioner/layer_graph.h"
#include "partitioner/layout_rules.h"
#include "partitioner/layout_search.h"
#include "partitioner/partition_choice.h"
#include "partitioner/partition_plan.h"
#include "partitioner/plan_report.h"
#include "partitioner/schedule.h"
#include "partitioner/stage_balancer.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/parallel_grid.h"
#include "core/config.h"
#include "runtime/data/batch_sampler.h"
#include "runtime/data/data_source.h"
#include "runtime/data/dataset.h"
#include "runtime/data/vocabulary.h"
#include "core/error.h"
#include "runtime/model/layer.h"
#include "runtime/model/layer_registry.h"
#include "runtime/model/model.h"
#include "runtime/model/parameter.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/tensor.h"
#include "runtime/train/grad_norm.h"
#include "runtime/train/metrics.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/trainer.h"
#include "runtime/train/device_runtime_session.h"
#include "runtime/train/training_session.h"
