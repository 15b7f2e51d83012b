// `tessera serve`: loads the checkpoint (this rank's shard under --tp), starts the decode loop
// and the HTTP server on rank 0, prints the address, and shuts down in order on SIGTERM /
// SIGINT; ranks 1..tp-1 follow rank 0's steps.
#include "launcher/serve_command.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <thread>

#include <httplib.h>
#include <mpi.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "core/error.h"
#include "launcher/serve_metrics.h"
#include "launcher/serve_routes.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/comm/mpi_communicator.h"
#include "runtime/inference/inference_model.h"
#include "runtime/serving/decode_loop.h"
#include "runtime/serving/inference_sequence_model.h"
#include "runtime/serving/request_queue.h"
#include "runtime/serving/tensor_parallel_model.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

// Set by the signal handler, polled by the shutdown watcher. A signal handler can only reach
// process-wide state; this flag is the one such piece.
std::atomic<bool> g_serve_stop{false};

extern "C" void request_serve_stop(int) { g_serve_stop.store(true); }

void install_stop_handlers(void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a signal landing on a handler thread must not fail its socket reads.
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

// cpp-httplib 0.11 listens with a backlog of 5, compiled into the library: a burst of clients
// overflows it, the kernel drops their SYNs, and they retry only after a second. Listening
// again on the bound socket raises the backlog.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

nlohmann::json model_info(const ServeOptions& options, const InferenceModel& model, const std::string& name,
                          const std::string& step_dir, int64_t max_prompt_chars) {
  return {
      {"id", name},
      {"object", "model"},
      {"created", std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::file_clock::to_sys(std::filesystem::last_write_time(step_dir)).time_since_epoch())
                      .count()},
      {"owned_by", "tessera"},
      {"checkpoint", std::filesystem::weakly_canonical(step_dir).string()},
      {"step", read_manifest(step_dir).step},
      {"context_length", model.context_length()},
      {"vocab_size", model.vocab_size()},
      {"vocabulary", vocabulary_kind_name(model.vocabulary().kind())},
      {"parameters", model.parameters()},
      {"layers", model.config().num_layers},
      {"hidden_size", model.config().hidden_size},
      {"attention_heads", model.config().num_attention_heads},
      {"tensor_parallel", model.tp().size},
      {"max_batch", options.max_batch},
      {"max_queue", options.max_queue},
      {"max_prompt_chars", max_prompt_chars},
  };
}

// Waits for SIGTERM / SIGINT or a loop that ended on its own (a failed tp rank), then: closes
// the queue, lets running requests finish (and their streams be written) up to the deadline,
// and stops the listener.
void watch_for_stop(HttpServer& server, DecodeLoop& loop, const RequestQueue& queue, const ServeContext& context,
                    double shutdown_timeout_s, const std::atomic<bool>& server_done) {
  while (!g_serve_stop.load() && !server_done.load() && !loop.ended()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (server_done.load()) return;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(shutdown_timeout_s));
  if (!loop.ended()) {
    spdlog::info("tessera serve: stopping: {} waiting sequences get 503, {} running ones get {} s to finish",
                 queue.size(), loop.active(), shutdown_timeout_s);
  }
  loop.begin_shutdown(deadline);
  // A second's grace past the deadline for the handlers to write what the loop answered.
  while ((!loop.ended() || context.in_flight.load() > 0) && Clock::now() < deadline + std::chrono::seconds(1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // stop() does nothing before listen_after_bind has started (and must be called once).
  while (!server.is_running() && !server_done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!server_done.load()) server.stop();
}

int listen_port(HttpServer& server, const ServeOptions& options) {
  if (options.port == 0) {
    const int port = server.bind_to_any_port(options.host);
    TESSERA_REQUIRE(port > 0, "cannot listen on {} (any free port)", options.host);
    return port;
  }
  TESSERA_REQUIRE(server.bind_to_port(options.host, options.port),
                  "cannot listen on {}:{} (address in use, or not an address of this host?)", options.host,
                  options.port);
  return options.port;
}

// Rank 0: HTTP, the queue and the decode loop over `sequences`, until stopped.
void serve_http(const ServeOptions& options, const InferenceModel& model, const SequenceModel& sequences) {
  const std::string step_dir = resolve_checkpoint(options.checkpoint);
  const int64_t context_length = model.context_length();
  const int64_t max_prompt_chars = options.max_prompt_chars == 0 ? context_length - 1 : options.max_prompt_chars;
  TESSERA_REQUIRE(max_prompt_chars >= 1 && max_prompt_chars <= context_length - 1,
                  "--max-prompt-chars {} must be in [1, {}] (the context length {} - 1 leaves room for one new "
                  "token)", max_prompt_chars, context_length - 1, context_length);
  const std::string name = options.name.empty()
                               ? std::filesystem::weakly_canonical(step_dir).parent_path().filename().string()
                               : options.name;
  ServeContext context;
  context.model_info = model_info(options, model, name, step_dir, max_prompt_chars);
  context.vocabulary = &model.vocabulary();
  context.limits.model_name = name;
  context.limits.context_length = context_length;
  context.limits.max_prompt_chars = max_prompt_chars;
  context.limits.max_sequences = options.max_queue;
  context.limits.max_logprobs = static_cast<int>(std::min<int64_t>(20, model.vocab_size()));
  context.read_timeout_s = options.read_timeout_s;

  ServeMetrics metrics(name);
  RequestQueue queue(static_cast<size_t>(options.max_queue));
  DecodeLoop loop(sequences, queue, static_cast<size_t>(options.max_batch), options.threads, &metrics);
  context.queue = &queue;
  context.loop = &loop;
  context.metrics = &metrics;

  HttpServer server;
  // Every admitted or queued request holds a handler thread while it waits, so the pool must
  // be larger than batch + queue: otherwise connections wait in cpp-httplib's own unbounded
  // list, where the queue limit (and its 503) never sees them.
  const size_t handler_threads = static_cast<size_t>(options.max_batch + options.max_queue) + 8;
  server.new_task_queue = [handler_threads] { return new httplib::ThreadPool(handler_threads); };
  server.set_read_timeout(options.read_timeout_s, 0);
  install_routes(server, context);
  const int port = listen_port(server, options);
  server.raise_backlog();
  install_stop_handlers(request_serve_stop);
  spdlog::info("tessera serve: {} (step {}, {} parameters, context {}, vocab {}, tp {}), batch {}, queue {}", name,
               context.model_info["step"].get<int64_t>(), model.parameters(), context_length, model.vocab_size(),
               model.tp().size, options.max_batch, options.max_queue);
  spdlog::info("tessera serve: listening on http://{}:{}", options.host, port);
  std::atomic<bool> server_done{false};
  std::thread watcher(
      [&] { watch_for_stop(server, loop, queue, context, options.shutdown_timeout_s, server_done); });
  const bool listened = server.listen_after_bind();
  server_done.store(true);
  watcher.join();
  loop.shutdown();
  const std::string fatal = loop.fatal_error();
  if (!fatal.empty()) throw Error("the decode loop stopped: " + fatal);
  TESSERA_CHECK(listened || g_serve_stop.load(), "the HTTP server on {}:{} stopped unexpectedly", options.host, port);
  spdlog::info("tessera serve: stopped after {} sequences ({} batched steps)", loop.completed(), loop.steps());
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a trained GPT checkpoint over HTTP with OpenAI's completions protocol: POST /v1/completions "
      "(streaming too), GET /v1/models, GET /healthz, GET /metrics. Requests are decoded together "
      "(continuous batching); `mpirun -np N tessera serve CKPT --tp N` splits the model's heads over N ranks. "
      "SIGTERM or SIGINT stops it cleanly.");
  cmd->add_option("checkpoint", options.checkpoint, "Checkpoint step directory, or a checkpoint.dir for its newest")
      ->required();
  cmd->add_option("--host", options.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", options.port, "TCP port; 0 picks a free one (the address is printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  // Every sequence in the batch and every queued request holds a handler thread while it
  // waits, so both are bounded.
  cmd->add_option("--max-batch", options.max_batch, "Most sequences decoded together in one step")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--max-queue", options.max_queue,
                  "Most sequences waiting for a batch slot (a request's prompts x n count each); more get 503")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-prompt-chars", options.max_prompt_chars,
                  "Longest prompt accepted, in characters (bytes); default: the context length - 1");
  cmd->add_option("--threads", options.threads,
                  "OpenMP threads of the decode steps; 0: OpenMP's default (OMP_NUM_THREADS, else all cores). "
                  "1 is often faster for small models or on shared cores")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--name", options.name, "Model name in answers; default: the checkpoint directory's name");
  cmd->add_option("--read-timeout", options.read_timeout_s,
                  "Seconds a client may stall while sending a request before it gets 408")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", options.shutdown_timeout_s,
                  "Seconds running requests get to finish after SIGTERM / SIGINT; then they get 503")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_option("--tp", options.tp, "Tensor-parallel ranks: run as `mpirun -np N tessera serve CKPT --tp N`")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--comm-timeout", options.comm_timeout_s,
                  "With --tp: seconds a rank waits on another before the server stops with an error")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  return cmd;
}

int run_serve(const ServeOptions& options) {
  auto world = MpiCommunicator::world(options.comm_timeout_s);
  TESSERA_REQUIRE(world->size() == options.tp,
                  "--tp {} needs exactly {} ranks (`mpirun -np {} tessera serve ... --tp {}`); this job has {}",
                  options.tp, options.tp, options.tp, options.tp, world->size());
  if (options.tp == 1) {
    const InferenceModel model = InferenceModel::load(options.checkpoint);
    TESSERA_REQUIRE(model.vocabulary().has_text(),
                    "{}: the model's vocabulary is token ids without text; serve needs a chars or bytes vocabulary",
                    options.checkpoint);
    const InferenceSequenceModel sequences(model);
    serve_http(options, model, sequences);
    return 0;
  }
  int thread_level = 0;
  MPI_Query_thread(&thread_level);
  // Rank 0's collectives run on the decode loop thread, not the one that initialised MPI.
  TESSERA_REQUIRE(thread_level >= MPI_THREAD_SERIALIZED,
                  "--tp needs MPI_THREAD_SERIALIZED from the MPI library (it provides level {})", thread_level);
  TpGroup tp{world.get(), world->rank(), world->size()};
  const InferenceModel shard = InferenceModel::load(options.checkpoint, tp);
  TESSERA_REQUIRE(shard.vocabulary().has_text(),
                  "{}: the model's vocabulary is token ids without text; serve needs a chars or bytes vocabulary",
                  options.checkpoint);
  if (world->rank() != 0) {
    // Rank 0 decides when to stop (its SIGTERM finishes running requests first); a signal that
    // reaches every rank (Ctrl-C on mpirun) must not end the workers under it.
    install_stop_handlers(SIG_IGN);
    run_tensor_parallel_worker(shard, *world, static_cast<size_t>(options.max_batch));
    return 0;
  }
  const TensorParallelSequenceModel sequences(shard, *world, static_cast<size_t>(options.max_batch));
  serve_http(options, shard, sequences);
  sequences.stop();
  return 0;
}

}  // namespace tessera
