// Pipeline transfers on an ordered stream (NCCL). There a send is not buffered: it holds the
// stream, and every operation queued after it, until the receiver's matching receive runs; and
// the stream starts an operation only after the compute queued before it. Receives posted ahead
// (as the MPI path does) could then wait on a send queued behind them. So on such a stream the
// executor follows a plan: between two compute steps, one group (ncclGroupStart/End, Megatron's
// batch_isend_irecv) holding the sends of the step before and the receives of the step after.
// This file makes the plan and checks, by running every rank's plan, that it cannot deadlock.
#pragma once

#include <string>
#include <vector>

#include "partitioner/schedule.h"

namespace tessera {

// One step of a rank's plan: a group of transfers issued together, or one compute action.
struct StreamStep {
  std::vector<size_t> group;  // indices into the action list; empty for a compute step
  size_t compute = 0;         // the compute action's index, for a compute step
};

// The plan of one rank's list (make_schedule or make_forward_schedule). Every action appears once:
// computes in list order, receives before the compute that needs them, sends after the compute
// that made them; the sends (and the receives) keep their relative order, so in-order matching
// pairs the same messages as the list does.
std::vector<StreamStep> plan_stream_transfers(const std::vector<Action>& actions, int virtual_stages);

// First checks that in-order matching pairs the right messages: NCCL matches the sends from one
// rank to another with the receiver's receives from it in issue order (tags do not exist), so
// per (sender, receiver) the lists must send and receive the same messages in the same order.
// Then runs the lists' plans (indexed by pipeline rank): a rank's groups start one after another,
// each once the previous one has finished and the compute before it in the plan has run; a group
// finishes when the peer of each of its transfers has started the group holding
// the matching transfer (the operations of a started group progress together); a Forward or
// Backward runs once the group holding its receive has finished. Empty when every list runs to
// its end; otherwise one line: the first mismatched message, or where each unfinished rank
// stopped. A transfer with no matching one on its peer throws tessera::Error.
std::string check_stream_ordered_transfers(const std::vector<std::vector<Action>>& ranks, int virtual_stages);

}  // namespace tessera
