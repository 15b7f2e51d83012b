// POST /v1/completions: validate, queue every choice of the request at once (503 with
// Retry-After when the queue has no room), then answer the whole completion or stream it as
// server-sent events; a streaming client that goes away cancels its choices at their next
// token. Logs one info line per request and counts it in the metrics.
#pragma once

#include <httplib.h>

#include "launcher/serve_routes.h"

namespace tessera {

void answer_completion(const ServeContext& context, const httplib::Request& req, httplib::Response& res);

}  // namespace tessera
