// Routes of `tessera serve`: the three endpoints, 405 for their other methods, the completion
// handler, and JSON bodies for every error, including the ones cpp-httplib answers itself.
#include "launcher/serve_routes.h"

#include <cctype>
#include <exception>
#include <random>
#include <string_view>

#include <fmt/format.h>

#include "core/error.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr std::string_view kPaths = "paths: GET /healthz, GET /v1/models, POST /v1/completions";

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

// Answers 405 (with Allow) to every method but `allowed` on `path`. These are real handlers,
// not a pre-routing check: cpp-httplib reads the body only for routed requests, and a body
// left unread would be parsed as the next request on a keep-alive connection.
void refuse_other_methods(httplib::Server& server, const std::string& path, const std::string& allowed) {
  const auto refuse = [path, allowed](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Allow", allowed);
    reply(res, 405, error_body(fmt::format("method {} is not allowed on {} (use {})", req.method, path, allowed)));
  };
  if (allowed != "GET") server.Get(path, refuse);  // HEAD too
  if (allowed != "POST") server.Post(path, refuse);
  server.Put(path, refuse);
  server.Patch(path, refuse);
  server.Delete(path, refuse);
  server.Options(path, refuse);
}

// "application/json", optionally with parameters ("; charset=utf-8"), in any letter case.
bool is_json_content_type(std::string value) {
  value = value.substr(0, value.find(';'));
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return value == "application/json";
}

void complete(const ServeContext& context, const httplib::Request& req, httplib::Response& res) {
  if (!is_json_content_type(req.get_header_value("Content-Type"))) {
    const std::string got = req.has_header("Content-Type") ? req.get_header_value("Content-Type") : "none";
    reply(res, 415, error_body(fmt::format("Content-Type must be application/json, not '{}'", got)));
    return;
  }
  CompletionRequest request;
  try {
    // A request without a seed gets a fresh one, echoed in the answer so it can be replayed.
    request = parse_completion_request(req.body, *context.vocabulary, context.limits, std::random_device{}());
  } catch (const InputError& e) {
    reply(res, 400, error_body(e.what()));
    return;
  }
  RequestQueue::Submission submission = context.queue->submit(request);
  if (!submission.accepted()) {
    res.set_header("Retry-After", "1");
    reply(res, 503, error_body(submission.refusal));
    return;
  }
  const CompletionResult result = submission.result.get();
  switch (result.status) {
    case CompletionStatus::Finished:
      reply(res, 200, completion_response(context.model_name, request, result, *context.vocabulary));
      return;
    case CompletionStatus::Rejected:
      reply(res, 503, error_body(result.error));
      return;
    case CompletionStatus::Failed:
      reply(res, 500, error_body(result.error));
      return;
  }
}

}  // namespace

void install_routes(httplib::Server& server, const ServeContext& context) {
  server.Get("/healthz", [&context](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, json{{"status", "ok"},
                         {"active", context.loop->active()},
                         {"queued", context.queue->size()},
                         {"completed", context.loop->completed()}});
  });
  server.Get("/v1/models", [&context](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, json{{"object", "list"}, {"data", json::array({context.model_info})}});
  });
  server.Post("/v1/completions", [&context](const httplib::Request& req, httplib::Response& res) {
    complete(context, req, res);
  });
  refuse_other_methods(server, "/healthz", "GET");
  refuse_other_methods(server, "/v1/models", "GET");
  refuse_other_methods(server, "/v1/completions", "POST");
  // Errors cpp-httplib finds itself (malformed request, 413 body too large) get a JSON body too.
  server.set_payload_max_length(context.max_body_bytes);
  server.set_error_handler([&context](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string reason = fmt::format("HTTP error {}", res.status);
    if (res.status == 404) reason = fmt::format("no such path '{}' ({})", req.path, kPaths);
    if (res.status == 400) reason = "malformed HTTP request";
    if (res.status == 413) reason = fmt::format("the body is larger than {} bytes", context.max_body_bytes);
    if (res.status == 414) reason = "the request target is too long";
    reply(res, res.status, error_body(reason));
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string reason = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      reason = e.what();
    } catch (...) {
    }
    reply(res, 500, error_body(reason));
  });
}

}  // namespace tessera
