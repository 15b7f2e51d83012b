// The HTTP side of `tessera serve` (cpp-httplib): GET /healthz, GET /v1/models and
// POST /v1/completions, and the JSON error answers (400 bad input, 404 unknown path, 405
// wrong method, 413 body too large, 415 not JSON, 503 queue full or shutting down).
// Handler threads only validate, queue and wait; the model runs on the DecodeLoop thread.
#pragma once

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "launcher/serve_request.h"
#include "runtime/data/vocabulary.h"
#include "runtime/serving/decode_loop.h"
#include "runtime/serving/request_queue.h"

namespace tessera {

struct ServeContext {
  std::string model_name;
  nlohmann::json model_info;  // the GET /v1/models entry
  const Vocabulary* vocabulary = nullptr;
  CompletionLimits limits;
  RequestQueue* queue = nullptr;
  const DecodeLoop* loop = nullptr;
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413
};

// Registers the routes, body size limit and error handling on `server`; `context` must
// outlive it.
void install_routes(httplib::Server& server, const ServeContext& context);

}  // namespace tessera
