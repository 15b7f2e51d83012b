// What the decode loop reports as it runs, for a metrics exporter (the server's /metrics):
// batch sizes per step, time to first token and the gaps between tokens. Calls come from the
// decode loop thread; an implementation must be thread-safe against its own readers.
#pragma once

#include <cstddef>

namespace tessera {

class ServingObserver {
 public:
  virtual ~ServingObserver() = default;
  // One batched model step ran over `sequences` of `capacity` slots.
  virtual void on_step(size_t sequences, size_t capacity) = 0;
  // A sequence's first token, `seconds` after its request was submitted (queue wait included).
  virtual void on_first_token(double seconds) = 0;
  // A later token, `seconds` after the sequence's previous one.
  virtual void on_next_token(double seconds) = 0;
};

}  // namespace tessera
