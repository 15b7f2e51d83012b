// Routes of `tessera serve`: the endpoints, 405 for their other methods, and OpenAI-shaped JSON
// bodies for every error, including the ones cpp-httplib answers itself.
#include "launcher/serve_routes.h"

#include <cctype>
#include <ctime>
#include <exception>
#include <random>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "launcher/serve_completion.h"
#include "launcher/serve_response.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr std::string_view kPaths =
    "paths: POST /v1/completions, GET /v1/models, GET /healthz, GET /metrics";

void reply_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                 const std::string& code = "") {
  res.status = status;
  res.set_content(dump_json(error_json(status, message, param, code)), "application/json");
}

// Answers 405 (with Allow) to every method but `allowed` on `path`. These are real handlers,
// not a pre-routing check: cpp-httplib reads the body only for routed requests, and a body
// left unread would be parsed as the next request on a keep-alive connection.
void refuse_other_methods(httplib::Server& server, const std::string& path, const std::string& allowed) {
  const auto refuse = [path, allowed](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Allow", allowed);
    reply_error(res, 405, fmt::format("method {} is not allowed on {} (use {})", req.method, path, allowed));
  };
  if (allowed != "GET") server.Get(path, refuse);  // HEAD too
  if (allowed != "POST") server.Post(path, refuse);
  server.Put(path, refuse);
  server.Patch(path, refuse);
  server.Delete(path, refuse);
  server.Options(path, refuse);
}

// The path as a metrics label: a known path, or "other" (a client must not mint label values).
std::string path_label(const std::string& path) {
  for (const char* known : {"/v1/completions", "/v1/models", "/healthz", "/metrics"}) {
    if (path == known) return path;
  }
  return "other";
}

// A cpp-httplib 400 for a request whose body stopped short of its Content-Length is a read
// timeout (the client stalled): say so, with 408.
void explain_incomplete_body(const ServeContext& context, const httplib::Request& req, httplib::Response& res) {
  if (res.status != 400 || !req.has_header("Content-Length")) return;
  const std::string declared = req.get_header_value("Content-Length");
  if (declared.empty() || !std::isdigit(static_cast<unsigned char>(declared[0]))) return;
  const uint64_t length = std::stoull(declared);
  if (req.body.size() >= length) return;
  reply_error(res, 408,
              fmt::format("the request body stopped after {} of {} bytes: nothing arrived for {} s (read timeout)",
                          req.body.size(), length, context.read_timeout_s));
  res.set_header("Connection", "close");
}

void install_info_routes(httplib::Server& server, const ServeContext& context) {
  server.Get("/healthz", [&context](const httplib::Request&, httplib::Response& res) {
    const std::string fatal = context.loop->fatal_error();
    res.status = fatal.empty() ? 200 : 503;
    res.set_content(dump_json(json{{"status", fatal.empty() ? "ok" : "failed"},
                                   {"active", context.loop->active()},
                                   {"queued", context.queue->size()},
                                   {"completed", context.loop->completed()}}),
                    "application/json");
  });
  server.Get("/v1/models", [&context](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump_json(json{{"object", "list"}, {"data", json::array({context.model_info})}}),
                    "application/json");
  });
  server.Get("/metrics", [&context](const httplib::Request&, httplib::Response& res) {
    res.set_content(context.metrics->render(context.queue->size(), context.loop->active(), context.loop->capacity()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace

void install_routes(httplib::Server& server, const ServeContext& context) {
  install_info_routes(server, context);
  server.Post("/v1/completions", [&context](const httplib::Request& req, httplib::Response& res) {
    answer_completion(context, req, res);
  });
  refuse_other_methods(server, "/healthz", "GET");
  refuse_other_methods(server, "/v1/models", "GET");
  refuse_other_methods(server, "/metrics", "GET");
  refuse_other_methods(server, "/v1/completions", "POST");
  server.set_logger([&context](const httplib::Request& req, const httplib::Response& res) {
    context.metrics->count_request(path_label(req.path), res.status);
  });
  // Errors cpp-httplib finds itself (malformed request, 413 body too large) get a JSON body too.
  server.set_payload_max_length(context.max_body_bytes);
  server.set_error_handler([&context](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    explain_incomplete_body(context, req, res);
    if (!res.body.empty()) return;
    std::string reason = fmt::format("HTTP error {}", res.status);
    if (res.status == 404) reason = fmt::format("no such path '{}' ({})", req.path, kPaths);
    if (res.status == 400) {
      reason = fmt::format("malformed or incomplete HTTP request (its headers did not end within the {} s read "
                           "timeout, or are not HTTP)", context.read_timeout_s);
    }
    if (res.status == 413) reason = fmt::format("the body is larger than {} bytes", context.max_body_bytes);
    if (res.status == 414) reason = "the request target is too long";
    reply_error(res, res.status, reason);
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string reason = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      reason = e.what();
    } catch (...) {
    }
    reply_error(res, 500, reason);
  });
}

}  // namespace tessera
