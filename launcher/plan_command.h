// `tessera plan`: ranks the parallel layouts of a config for a world size and memory cap on a
// described (or calibrated) cluster, prints the table and the rejections, writes the best plan
// as JSON. `--calibrate` measures this machine (GEMM rates, memory bandwidth, GPT block times,
// and MPI latency/bandwidth when run under mpirun) into a cache file the planner reads.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "launcher/cluster_file.h"
#include "partitioner/cost_model.h"
#include "partitioner/machine_model.h"

namespace tessera {

struct PlanOptions {
  std::string config_path;              // required unless calibrate
  std::vector<std::string> overrides;   // --set key=value
  int world = 1;
  std::string memory_cap;               // "24GiB"; empty: the cluster's
  std::string cluster_path;             // YAML or JSON; empty: the calibration cache
  int top = 10;
  std::string json_path;                // the best plan; empty: not written
  bool calibrate = false;
  std::string cache_path;               // empty: default_calibration_path()
  std::vector<int> micro_batch_sizes;   // empty: 1, 2, 4, 8 and the config's
  std::vector<std::string> schedules;   // empty: gpipe, 1f1b, interleaved
  std::vector<std::string> recompute;   // empty: none, selective, full
  std::vector<int> zero_stages;         // empty: 0, 1
  std::string sequence_parallel = "both";  // both | on | off
  int max_virtual_stages = 4;
  int64_t vocab = 0;                    // 0: from model.vocab (chars: the data file's)
  bool details = true;                  // print the best plan's stages and memory
  bool config_layout = false;           // only the config's own layout, its stages balanced
};

// Registers the `plan` subcommand on app, filling `options` when parsed.
CLI::App* add_plan_command(CLI::App& app, PlanOptions& options);

// Runs it: 0 on success. Throws tessera::InputError for bad input (config, cluster file,
// memory cap) and tessera::Error otherwise; prints only on world rank 0 under mpirun.
int run_plan(const PlanOptions& options);

}  // namespace tessera
