// Agreeing on the outcome of work every rank does on its own, such as reading its checkpoint
// files: a failure on any rank stops every rank at once with the same error, instead of the
// failing rank aborting the job while the others run on into a collective it never joins.
#pragma once

#include <functional>
#include <string>

#include "runtime/comm/communicator.h"
#include "core/error.h"

namespace tessera {

// Bad input (a damaged file) that every rank of the world throws together, with the same
// message: the launcher prints it once, and every rank exits without aborting the job.
class AgreedError : public InputError {
 public:
  using InputError::InputError;
};

// Runs `work` on this rank, then agrees over `world` (collective). When `work` threw on any
// rank, every rank throws the error of the lowest such rank: AgreedError when it was an
// InputError, else an Error naming that rank. Otherwise every rank returns. `work` may run
// collectives only if they end alike on every rank (complete, or throw). With a null world
// (one process) `work`'s own error passes through.
void run_agreed(Communicator* world, const std::function<void()>& work);

}  // namespace tessera
