// ServeMetrics: one prometheus-cpp registry; the families are registered once, at start.
#include "launcher/serve_metrics.h"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace tessera {
namespace {

using prometheus::Histogram;

// Latency buckets from 0.5 ms to 10 s: a decode step of a small model takes well under a
// millisecond, a long prompt behind a full queue seconds.
Histogram::BucketBoundaries latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

ServeMetrics::ServeMetrics(const std::string& model_name)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("tessera_http_requests_total")
                    .Help("HTTP requests answered, by path and status code")
                    .Labels({{"model", model_name}})
                    .Register(*registry_)),
      finished_(prometheus::BuildCounter()
                    .Name("tessera_choices_finished_total")
                    .Help("Completion choices ended, by finish reason (length, stop, cancelled, error)")
                    .Labels({{"model", model_name}})
                    .Register(*registry_)),
      prompt_tokens_(prometheus::BuildCounter()
                         .Name("tessera_prompt_tokens_total")
                         .Help("Prompt tokens of answered completion requests")
                         .Labels({{"model", model_name}})
                         .Register(*registry_)
                         .Add({})),
      completion_tokens_(prometheus::BuildCounter()
                             .Name("tessera_completion_tokens_total")
                             .Help("Tokens generated for completion requests")
                             .Labels({{"model", model_name}})
                             .Register(*registry_)
                             .Add({})),
      steps_(prometheus::BuildCounter()
                 .Name("tessera_batch_steps_total")
                 .Help("Batched model steps run")
                 .Labels({{"model", model_name}})
                 .Register(*registry_)
                 .Add({})),
      queued_(prometheus::BuildGauge()
                  .Name("tessera_queue_length")
                  .Help("Sequences waiting for a batch slot")
                  .Labels({{"model", model_name}})
                  .Register(*registry_)
                  .Add({})),
      active_(prometheus::BuildGauge()
                  .Name("tessera_batch_active_sequences")
                  .Help("Sequences in the batch now")
                  .Labels({{"model", model_name}})
                  .Register(*registry_)
                  .Add({})),
      capacity_(prometheus::BuildGauge()
                    .Name("tessera_batch_capacity")
                    .Help("Batch slots (--max-batch)")
                    .Labels({{"model", model_name}})
                    .Register(*registry_)
                    .Add({})),
      first_token_(prometheus::BuildHistogram()
                       .Name("tessera_time_to_first_token_seconds")
                       .Help("From a sequence's arrival to its first generated token, queue wait included")
                       .Labels({{"model", model_name}})
                       .Register(*registry_)
                       .Add({}, latency_buckets())),
      inter_token_(prometheus::BuildHistogram()
                       .Name("tessera_inter_token_latency_seconds")
                       .Help("Between two consecutive tokens of a sequence")
                       .Labels({{"model", model_name}})
                       .Register(*registry_)
                       .Add({}, latency_buckets())),
      occupancy_(prometheus::BuildHistogram()
                     .Name("tessera_batch_occupancy_ratio")
                     .Help("Per batched step: sequences stepped / batch slots")
                     .Labels({{"model", model_name}})
                     .Register(*registry_)
                     .Add({}, Histogram::BucketBoundaries{0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0})) {}

void ServeMetrics::on_step(size_t sequences, size_t capacity) {
  steps_.Increment();
  occupancy_.Observe(static_cast<double>(sequences) / static_cast<double>(capacity));
}

void ServeMetrics::on_first_token(double seconds) { first_token_.Observe(seconds); }

void ServeMetrics::on_next_token(double seconds) { inter_token_.Observe(seconds); }

void ServeMetrics::count_request(const std::string& path, int status) {
  requests_.Add({{"path", path}, {"code", std::to_string(status)}}).Increment();
}

void ServeMetrics::count_completion(int64_t prompt_tokens, int64_t completion_tokens) {
  prompt_tokens_.Increment(static_cast<double>(prompt_tokens));
  completion_tokens_.Increment(static_cast<double>(completion_tokens));
}

void ServeMetrics::count_finish(const std::string& reason) { finished_.Add({{"reason", reason}}).Increment(); }

std::string ServeMetrics::render(size_t queued, size_t active, size_t capacity) {
  queued_.Set(static_cast<double>(queued));
  active_.Set(static_cast<double>(active));
  capacity_.Set(static_cast<double>(capacity));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace tessera
