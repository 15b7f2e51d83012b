// answer_completion: the handler thread's part of a completion request.
#include "launcher/serve_completion.h"

#include <cctype>
#include <chrono>
#include <ctime>
#include <memory>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "launcher/serve_job.h"
#include "launcher/serve_response.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

// How long a stream waits for news before it checks again; after kKeepAlive without an event
// it writes an SSE comment, which both keeps proxies from closing an idle stream and finds a
// client that went away while its request was still queued.
constexpr std::chrono::milliseconds kStreamPoll{100};
constexpr std::chrono::milliseconds kKeepAlive{2000};

void reply_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                 const std::string& code = "") {
  res.status = status;
  res.set_content(dump_json(error_json(status, message, param, code)), "application/json");
}

// "application/json", optionally with parameters ("; charset=utf-8"), in any letter case.
bool is_json_content_type(std::string value) {
  value = value.substr(0, value.find(';'));
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return value == "application/json";
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The request log line and the token metrics, once a request is over.
void finish(const ServeContext& context, const CompletionJob& job, int status, Clock::time_point start) {
  context.metrics->count_completion(job.prompt_tokens(), job.completion_tokens());
  for (const std::string& reason : job.finish_reasons()) context.metrics->count_finish(reason);
  spdlog::info("request {}: {}{}, {}, total {:.1f} ms", job.header().id, status, job.params().stream ? " stream" : "",
               job.summary(), ms_since(start));
  context.in_flight.fetch_sub(1);
}

void stream(const ServeContext& context, const std::shared_ptr<CompletionJob>& job, httplib::Response& res,
            Clock::time_point start) {
  res.set_header("Cache-Control", "no-cache");
  auto last_write = std::make_shared<Clock::time_point>(Clock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [job, last_write](size_t, httplib::DataSink& sink) {
        std::string events;
        const bool done = job->stream(kStreamPoll, events);
        if (events.empty() && !done && Clock::now() - *last_write >= kKeepAlive) events = ": keep-alive\n\n";
        if (!events.empty()) {
          // A failed write is a client that went away: its choices stop at their next token.
          if (!sink.write(events.data(), events.size())) {
            job->cancel();
            return false;
          }
          *last_write = Clock::now();
        }
        if (done) sink.done();
        return true;
      },
      [job, &context, start](bool success) {
        if (!success) job->cancel();
        job->wait_finished();
        finish(context, *job, 200, start);
      });
}

}  // namespace

void answer_completion(const ServeContext& context, const httplib::Request& req, httplib::Response& res) {
  const auto start = Clock::now();
  const uint64_t serial = context.next_id.fetch_add(1);
  if (!is_json_content_type(req.get_header_value("Content-Type"))) {
    const std::string got = req.has_header("Content-Type") ? req.get_header_value("Content-Type") : "none";
    reply_error(res, 415, fmt::format("Content-Type must be application/json, not '{}'", got));
    spdlog::info("request {}: 415 {}", serial, got);
    return;
  }
  std::random_device random;
  CompletionHeader header{fmt::format("cmpl-{:08x}{:08x}{:06x}", random(), random(), serial & 0xffffff),
                          static_cast<int64_t>(std::time(nullptr)), context.limits.model_name};
  std::shared_ptr<CompletionJob> job;
  try {
    CompletionParams params = parse_completion_request(req.body, *context.vocabulary, context.limits);
    // A request without a seed gets a fresh one, echoed in the answer so that it can be replayed.
    const uint64_t seed = (static_cast<uint64_t>(random()) << 32) | random();
    job = std::make_shared<CompletionJob>(std::move(params), *context.vocabulary, header, seed);
  } catch (const RequestError& e) {
    reply_error(res, e.status(), e.what(), e.param(), e.code());
    spdlog::info("request {}: {} {}", header.id, e.status(), e.what());
    return;
  }
  res.set_header("X-Request-Id", header.id);
  RequestQueue::Submissions submission = context.queue->submit_all(CompletionJob::requests(job));
  if (!submission.accepted()) {
    res.set_header("Retry-After", "1");
    reply_error(res, 503, submission.refusal);
    spdlog::info("request {}: 503 {}", header.id, submission.refusal);
    return;
  }
  job->start(std::move(submission.results));
  context.in_flight.fetch_add(1);
  if (job->params().stream) {
    stream(context, job, res, start);
    return;
  }
  try {
    res.status = 200;
    res.set_content(dump_json(job->answer()), "application/json");
  } catch (const RequestError& e) {
    reply_error(res, e.status(), e.what());
  }
  finish(context, *job, res.status, start);
}

}  // namespace tessera
