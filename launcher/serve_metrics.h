// `tessera serve`'s GET /metrics (Prometheus text format, through prometheus-cpp): HTTP
// requests by path and status, prompt and completion tokens, finished choices by reason,
// queue length and batch occupancy, and histograms of time to first token, inter-token
// latency and the batch occupancy of each step. It is the decode loop's ServingObserver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "runtime/serving/serving_observer.h"

namespace tessera {

class ServeMetrics : public ServingObserver {
 public:
  explicit ServeMetrics(const std::string& model_name);

  // ServingObserver, from the decode loop thread.
  void on_step(size_t sequences, size_t capacity) override;
  void on_first_token(double seconds) override;
  void on_next_token(double seconds) override;

  // One HTTP answer (any path).
  void count_request(const std::string& path, int status);
  // One completion request's tokens and its choices' finish reasons ("length", "stop", ...).
  void count_completion(int64_t prompt_tokens, int64_t completion_tokens);
  void count_finish(const std::string& reason);

  // The exposition text, with the gauges set to these current values first.
  std::string render(size_t queued, size_t active, size_t capacity);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& finished_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& completion_tokens_;
  prometheus::Counter& steps_;
  prometheus::Gauge& queued_;
  prometheus::Gauge& active_;
  prometheus::Gauge& capacity_;
  prometheus::Histogram& first_token_;
  prometheus::Histogram& inter_token_;
  prometheus::Histogram& occupancy_;
};

}  // namespace tessera
