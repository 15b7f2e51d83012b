// `tessera train`: the config, the runtime's bring-up (rank discovery, the parallel grid, data,
// the partition: runtime/train/training_session.h), the start-up banner, then the trainer with
// the progress display. Errors found before any work (config, world size,
// data, machine model) are reported once by rank 0; SIGUSR1 or SIGTERM asks the trainer to
// save a checkpoint and stop after the current step.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <spdlog/spdlog.h>

#include "launcher/banner.h"
#include "launcher/commands.h"
#include "launcher/config_loader.h"
#include "launcher/progress.h"
#include "launcher/cluster_file.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/train/device_runtime_session.h"
#include "runtime/train/runtime_support.h"
#include "runtime/train/training_session.h"

namespace tessera {
namespace {

// Set by the signal handler, read by the trainer between steps. A signal handler can only
// reach process-wide state; this flag is the one such piece.
std::atomic<bool> g_stop_requested{false};

extern "C" void request_stop(int) { g_stop_requested.store(true); }

// Runs a setup phase whose errors are the same on every rank (they depend only on the
// config and files every rank reads): rank 0 reports, every rank stops.
template <typename F>
auto setup_phase(const MpiEnvironment& env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError& e) {
    if (env.world_rank() == 0) std::cerr << "tessera: error: " << e.what() << std::endl;
    throw SetupFailed{};
  }
}

// "auto: step_40 in runs/x": what checkpoint.resume will load (read-only: the trainer decides).
std::string resume_state(const CheckpointConfig& c) {
  if (c.resume != "auto") return "none";
  std::vector<std::string> warnings;
  const auto found = find_latest_checkpoint(c.dir, &warnings);
  return found ? fmt::format("auto: {}", *found) : fmt::format("auto: no checkpoint in {} yet, from step 0", c.dir);
}

// The banner's facts on rank 0: the session's partition decision and what it loaded.
RunFacts run_facts(TrainingSession& session) {
  RunFacts f;
  f.world = session.grid().world_size();
  f.dp = session.grid().dp_size();
  f.threads = omp_get_max_threads();
  const Dataset& data = *session.dataset();
  f.train_tokens = static_cast<int64_t>(data.train.size());
  f.val_tokens = static_cast<int64_t>(data.val.size());
  f.vocab = data.vocab.size();
  f.resume = resume_state(session.config().checkpoint);
  take_partition(f, session.partition());
  return f;
}

}  // namespace

int run_train(const TrainOptions& opts, MpiEnvironment& env) {
  const int world_size = env.world_size();
  const Config config = setup_phase(env, [&] {
    std::vector<std::string> overrides = opts.overrides;
    if (opts.resume) overrides.push_back("checkpoint.resume=auto");
    Config c = load_config(opts.config_path, overrides);
    check_runtime_support(c);
    validate_for_world(c, world_size);
    return c;
  });
  spdlog::set_level(spdlog::level::from_str(config.log.level));
  if (opts.print_config) {
    if (env.world_rank() == 0) std::cout << config_to_yaml(config);
    return 0;
  }
  SessionOptions session_options;
  if (!opts.cluster_path.empty()) {
    session_options.machine = setup_phase(env, [&] { return load_cluster(opts.cluster_path); });
  }
  session_options.trainer.config_yaml = config_to_yaml(config);  // checkpoints keep the config as written
  session_options.trainer.stop_requested = &g_stop_requested;
  use_device_runtime(config, session_options);  // this program links tessera_device_runtime
  // Rank discovery, world, threads, grid, data and the partition (runtime/train/training_session.h).
  const auto session =
      setup_phase(env, [&] { return std::make_unique<TrainingSession>(config, env, std::move(session_options)); });
  const bool logging = session->world().rank() == 0;
  const char* term = std::getenv("TERM");
  const bool live = use_live_progress(parse_progress_mode(opts.progress), isatty(fileno(stdout)) != 0,
                                      session->rank_info().source, term != nullptr ? term : "");
  std::optional<StepTimeCheck> step_check;
  if (logging) {
    const RunFacts facts = run_facts(*session);
    if (facts.predicted) step_check.emplace(facts.predicted->step_time_s, facts.prediction_source);
    std::string banner = format_banner(config, session->graph(), facts);
    banner.pop_back();  // spdlog ends the line
    spdlog::info("{}", banner);
    // Every later line first clears the live progress line it would otherwise be appended to.
    if (live) spdlog::set_pattern("\r\033[K%v");
  }
  std::signal(SIGUSR1, request_stop);
  std::signal(SIGTERM, request_stop);

  ProgressDisplay progress(config.train.max_steps, live, stdout);
  TrainerCallbacks callbacks;
  if (logging) {
    callbacks.on_step = [&](const StepResult& r) {
      progress.step_done(r.step, r.loss, r.step_ms);
      if (!step_check) return;
      if (const auto warning = step_check->add(r.step, r.step_ms)) spdlog::warn("{}", *warning);
    };
    callbacks.on_log = [&](const StepMetrics& m) { spdlog::info("{}", progress.log_line(m)); };
  }
  log_with_spdlog(callbacks, logging);
  session->start(std::move(callbacks)).fit();
  return 0;
}

}  // namespace tessera
