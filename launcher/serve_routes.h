// The HTTP side of `tessera serve` (cpp-httplib): POST /v1/completions (OpenAI's completions
// protocol, whole or streamed), GET /v1/models, GET /healthz, GET /metrics, and OpenAI-shaped
// JSON errors for everything refused (400 bad input, 404 unknown path or model, 405 wrong
// method, 408 a request that stalled, 413 body too large, 415 not JSON, 503 queue full or
// shutting down). Handler threads only validate, queue and wait; the model runs on the
// DecodeLoop thread.
#pragma once

#include <atomic>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "launcher/serve_metrics.h"
#include "launcher/serve_request.h"
#include "runtime/data/vocabulary.h"
#include "runtime/serving/decode_loop.h"
#include "runtime/serving/request_queue.h"

namespace tessera {

struct ServeContext {
  nlohmann::json model_info;  // the GET /v1/models entry
  const Vocabulary* vocabulary = nullptr;
  CompletionLimits limits;
  RequestQueue* queue = nullptr;
  const DecodeLoop* loop = nullptr;
  ServeMetrics* metrics = nullptr;
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413
  int read_timeout_s = 10;          // for the 408 message
  mutable std::atomic<uint64_t> next_id{0};
  // Completion requests being answered (a stream until its last event is written): graceful
  // shutdown waits for them before it stops the listener.
  mutable std::atomic<int64_t> in_flight{0};
};

// Registers the routes, body size limit, error handling and the request counter on `server`;
// `context` must outlive it.
void install_routes(httplib::Server& server, const ServeContext& context);

}  // namespace tessera
