// `tessera serve`: loads the checkpoint, starts the decode loop and the HTTP server, prints
// the address, and shuts down in order on SIGTERM / SIGINT.
#include "launcher/serve_command.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include <httplib.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include "launcher/serve_routes.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/checkpoint/manifest.h"
#include "core/error.h"
#include "runtime/inference/inference_model.h"
#include "runtime/serving/decode_loop.h"
#include "runtime/serving/inference_sequence_model.h"
#include "runtime/serving/request_queue.h"

namespace tessera {
namespace {

// Set by the signal handler, polled by the shutdown watcher. A signal handler can only reach
// process-wide state; this flag is the one such piece.
std::atomic<bool> g_serve_stop{false};

extern "C" void request_serve_stop(int) { g_serve_stop.store(true); }

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = request_serve_stop;
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

int64_t count_parameters(const InferenceModel& model) {
  int64_t n = model.wte().numel() + model.wpe().numel() + model.ln_f_w().numel() + model.ln_f_b().numel();
  // A tied head shares the embedding's storage: count it once.
  if (model.lm_head().f32() != model.wte().f32()) n += model.lm_head().numel();
  for (const BlockWeights& b : model.blocks()) {
    for (const Tensor* t : {&b.ln1_w, &b.ln1_b, &b.attn_w, &b.attn_b, &b.attn_proj_w, &b.attn_proj_b, &b.ln2_w,
                            &b.ln2_b, &b.fc_w, &b.fc_b, &b.mlp_proj_w, &b.mlp_proj_b}) {
      n += t->numel();
    }
  }
  return n;
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a trained GPT checkpoint over HTTP: POST /v1/completions, GET /v1/models, GET /healthz. "
      "Requests are decoded together (continuous batching); SIGTERM or SIGINT stops it cleanly.");
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
  cmd->add_option("--max-queue", options.max_queue, "Most requests waiting for a batch slot; more get 503")
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
  return cmd;
}

int run_serve(const ServeOptions& options) {
  const std::string step_dir = resolve_checkpoint(options.checkpoint);
  const InferenceModel model = InferenceModel::load(options.checkpoint);
  TESSERA_REQUIRE(model.vocabulary().has_text(),
                  "{}: the model's vocabulary is token ids without text; serve needs a chars or bytes vocabulary",
                  options.checkpoint);
  const int64_t context_length = model.context_length();
  const int64_t max_prompt_chars = options.max_prompt_chars == 0 ? context_length - 1 : options.max_prompt_chars;
  TESSERA_REQUIRE(max_prompt_chars >= 1 && max_prompt_chars <= context_length - 1,
                  "--max-prompt-chars {} must be in [1, {}] (the context length {} - 1 leaves room for one new "
                  "token)", max_prompt_chars, context_length - 1, context_length);

  const std::filesystem::path step_path = std::filesystem::weakly_canonical(step_dir);
  ServeContext context;
  context.model_name = options.name.empty() ? step_path.parent_path().filename().string() : options.name;
  context.vocabulary = &model.vocabulary();
  context.limits.context_length = context_length;
  context.limits.max_prompt_chars = max_prompt_chars;
  context.model_info = {
      {"id", context.model_name},
      {"object", "model"},
      {"checkpoint", step_path.string()},
      {"step", read_manifest(step_dir).step},
      {"context_length", context_length},
      {"vocab_size", model.vocab_size()},
      {"vocabulary", vocabulary_kind_name(model.vocabulary().kind())},
      {"parameters", count_parameters(model)},
      {"layers", model.config().num_layers},
      {"hidden_size", model.config().hidden_size},
      {"max_batch", options.max_batch},
      {"max_queue", options.max_queue},
      {"max_prompt_chars", max_prompt_chars},
  };

  const InferenceSequenceModel sequences(model);
  RequestQueue queue(static_cast<size_t>(options.max_queue));
  DecodeLoop loop(sequences, queue, static_cast<size_t>(options.max_batch), options.threads);
  context.queue = &queue;
  context.loop = &loop;

  HttpServer server;
  // Every admitted or queued request holds a handler thread while it waits, so the pool must
  // be larger than batch + queue: otherwise connections wait in cpp-httplib's own unbounded
  // list, where the queue limit (and its 503) never sees them.
  const size_t handler_threads = static_cast<size_t>(options.max_batch + options.max_queue) + 8;
  server.new_task_queue = [handler_threads] { return new httplib::ThreadPool(handler_threads); };
  install_routes(server, context);
  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.host);
    TESSERA_REQUIRE(port > 0, "cannot listen on {} (any free port)", options.host);
  } else {
    TESSERA_REQUIRE(server.bind_to_port(options.host, port), "cannot listen on {}:{} (address in use, or not "
                    "an address of this host?)", options.host, port);
  }
  server.raise_backlog();

  install_stop_handlers();
  spdlog::info("tessera serve: {} (step {}, {} parameters, context {}, vocab {}), batch {}, queue {}",
               context.model_name, context.model_info["step"].get<int64_t>(),
               context.model_info["parameters"].get<int64_t>(), context_length, model.vocab_size(), options.max_batch,
               options.max_queue);
  spdlog::info("tessera serve: listening on http://{}:{}", options.host, port);
  std::atomic<bool> server_done{false};
  std::thread watcher([&] {
    while (!g_serve_stop.load() && !server_done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (server_done.load()) return;
    spdlog::info("tessera serve: stopping: {} waiting requests get 503, {} running ones finish", queue.size(),
                 loop.active());
    // Close the queue first, so requests that race with the listener's close get a 503 too.
    queue.close();
    // stop() does nothing before listen_after_bind has started (and must be called once).
    while (!server.is_running() && !server_done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!server_done.load()) server.stop();
  });
  const bool listened = server.listen_after_bind();
  server_done.store(true);
  watcher.join();
  loop.shutdown();
  TESSERA_CHECK(listened || g_serve_stop.load(), "the HTTP server on {}:{} stopped unexpectedly", options.host, port);
  spdlog::info("tessera serve: stopped after {} requests ({} batched steps)", loop.completed(), loop.steps());
  return 0;
}

}  // namespace tessera
