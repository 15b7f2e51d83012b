// run_agreed under every world size of the comm suite: success everywhere returns; a failure
// on some ranks (the first, the last, all) becomes the same error on every rank, with the
// lowest failing rank's message and kind (AgreedError for an InputError, else Error).
#include <string>

#include "runtime/comm/agreement.h"
#include "runtime/comm/mpi_communicator.h"
#include "tests/mpi/mpi_test_util.h"

namespace tessera::mpitest {
namespace {

// What run_agreed threw here: "" when it returned, else the kind and the message.
template <typename F>
std::string outcome(Communicator& world, F&& work) {
  try {
    run_agreed(&world, work);
    return "";
  } catch (const AgreedError& e) {
    return std::string("agreed: ") + e.what();
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace

void run_agreement_suite(Harness& h, MpiCommunicator& world) {
  const int rank = world.rank(), last = world.size() - 1;
  h.run("agreement", [&] {
    int ran = 0;
    h.check(outcome(world, [&] { ++ran; }).empty() && ran == 1, "nothing failed: every rank returns after one run");
    // A long message (many I32 words) from the last rank only.
    const std::string long_message = "rank " + std::to_string(last) + ": " + std::string(1001, 'x') + "!";
    std::string got = outcome(world, [&] {
      if (rank == last) throw InputError(long_message);
    });
    h.check(got == "agreed: " + long_message, "the last rank's input error on every rank, got '{}'", got.substr(0, 80));
    got = outcome(world, [&] { TESSERA_REQUIRE(false, "file of rank {} is damaged", rank); });
    h.check(got == "agreed: file of rank 0 is damaged", "all failed: the lowest rank's message, got '{}'", got);
    got = outcome(world, [&] {
      if (rank == last) TESSERA_REQUIRE(false, "bad input on rank {}", rank);
      if (rank == 0) throw Error("internal");
    });
    const std::string want = last == 0 ? "agreed: bad input on rank 0" : "error: on rank 0: internal";
    h.check(got == want, "a failed check on rank 0 wins over input on rank {}: got '{}', want '{}'", last, got, want);
  });
}

}  // namespace tessera::mpitest
