// Pipeline schedules as pure functions: the ordered actions one pipeline rank runs in one
// training step. The runtime's StageExecutor runs a list; schedule_sim.h times all of them.
#pragma once

#include <string>
#include <vector>

namespace tessera {

// Terms. p = pipeline stages (ranks of the pp group), m = microbatches per step, v = virtual
// stages (model chunks) per rank. Chunk c of pipeline rank s is global stage c * p + s
// (Megatron's interleaving), so the model runs 0..p-1 on chunk 0, then again on chunk 1, ...
// Global stage 0 takes its input from the data; global stage p*v-1 computes the loss.
//
// Timelines below: simulate() with forward 1, backward 2 per global stage and no transfer
// time, one column per time unit, p = 4, m = 8. Digit = forward of that microbatch, letter =
// backward (a = microbatch 0, b = 1, ...), '.' = idle. The theoretical bubble fraction is
// (p-1)/(m+p-1) = 3/11 for GPipe and 1F1B and (p-1)/(v*m+p-1) = 3/19 for interleaved, v = 2;
// the simulation gives exactly these (see tests/unit/test_schedule_sim.cc).
//
// GPipe (fill-drain): all m forwards, then all m backwards, both in microbatch order (as
// torchgpipe runs its clock cycles; reversing the backwards gives the same bubble). Peak
// in-flight: m microbatches.
//   rank 0  01234567.........aabbccddeeffgghh
//   rank 1  .01234567......aabbccddeeffgghh..
//   rank 2  ..01234567...aabbccddeeffgghh....
//   rank 3  ...01234567aabbccddeeffgghh......
//
// 1F1B (Megatron's forward_backward_pipelining_without_interleaving): warm-up of
// min(p - s - 1, m) forwards on rank s, then one forward and one backward in turn, then the
// remaining backwards. Same bubble as GPipe, peak in-flight min(p - s, m) <= p.
//   rank 0  0123......aa4bb5cc6dd7ee.ff.gg.hh
//   rank 1  .012....aa3bb4cc5dd6ee7ff.gg.hh..
//   rank 2  ..01..aa2bb3cc4dd5ee6ff7gg.hh....
//   rank 3  ...0aa1bb2cc3dd4ee5ff6gg7hh......
//
// Interleaved 1F1B (Megatron's forward_backward_pipelining_with_interleaving), v > 1,
// m % p == 0, p >= 2: the rank's k-th forward runs microbatch (k / (p*v)) * p + k % p of chunk
// (k % (p*v)) / p, i.e. groups of p microbatches go through chunk 0, then chunk 1, ...; the
// k-th backward runs the same microbatch of chunk v - 1 - (k % (p*v)) / p. Warm-up of
// min((p - s - 1) * 2 + (v - 1) * p, m * v) forwards, or all m * v when m == p (Megatron
// runs all forwards first then). Peak in-flight: warm-up + 1 microbatch-chunks, capped at m*v.
// v = 2; the row under each rank gives the chunk of each compute slot:
//   rank 0  01230123456...aa7bb.4cc5dd6aa7bbcc.dd.ee.ff.gg.hheeffgghh
//   chunk   00001111000   11011 11111110010000 00 11 11 11 1100000000
//   rank 1  .012301234..aa5bb6cc7dd4aa5bb6cc7dd.ee.ff.gg.hheeffgghh..
//   chunk    000011110  11011011011100100100100 11 11 11 1100000000
//   rank 2  ..0123012.aa3bb4cc5dd6aa7bb4cc5dd6ee7ff.gg.hheeffgghh....
//   chunk     0000111 11111011011000000100100111111 11 1100000000
//   rank 3  ...01230aa1bb2cc3dd4aa5bb6cc7dd4ee5ff6gg7hheeffgghh......
//   chunk      000011111111111100000000000011111111111100000000
//
// What the StageExecutor may assume about a list from make_schedule:
//  1. Every (microbatch, chunk) has exactly one Forward and one Backward, the Backward later.
//  2. A RecvAct comes immediately before the Forward that consumes it, a SendAct immediately
//     after the Forward that produced it; RecvGrad / SendGrad likewise around the Backward. They
//     carry the same (microbatch, chunk) as that compute action. Global stage 0 has no RecvAct
//     or SendGrad, the last global stage no SendAct or RecvGrad (its Backward starts from the
//     loss of the same microbatch's Forward).
//  3. transfer_peer() names the other end. Every send has exactly one matching receive there
//     and vice versa, and per (sender rank, receiver rank, Act|Grad) the sends and the receives
//     are in the same order, so MPI's non-overtaking rule matches them even with one tag per
//     direction (a tag from (microbatch, chunk) is still the robust choice).
//  4. The list is deadlock-free when sends never wait for their receiver (isend, completed by
//     the end of the step) and receives block: that is what simulate() checks. Posting any
//     receive earlier (irecv while scanning ahead) keeps it deadlock-free; blocking sends
//     (MPI_Send of a large tensor) do not: in 1F1B steady state neighbours send to each other.
//  5. Per chunk, forwards and backwards each run in ascending microbatch order, in every
//     schedule: parameter gradients accumulate in the same order as on one rank (mb 0..m-1),
//     and a chunk's gradients are final during its Backward of microbatch m-1 (the moment to
//     start its data-parallel all-reduce; with v > 1 other chunks still run after it).
//  6. The lists do not include the optimizer step; it follows the last action of every rank.

enum class ActionKind { RecvAct, Forward, SendAct, RecvGrad, Backward, SendGrad };
std::string action_kind_name(ActionKind kind);  // "recv_act", "forward", ...

struct Action {
  ActionKind kind;
  int microbatch;  // 0..m-1
  int chunk;       // model chunk on this rank, 0..v-1
  bool operator==(const Action&) const = default;
};
std::string to_string(const Action& action);  // "forward(mb 3, chunk 0)"

enum class ScheduleKind { GPipe, OneFOneB, Interleaved };
// "gpipe" | "1f1b" | "interleaved" (parallel.schedule); anything else is an InputError.
ScheduleKind parse_schedule(const std::string& name);
std::string schedule_name(ScheduleKind kind);

// Throws InputError unless stages, microbatches, virtual_stages >= 1; v == 1 unless
// interleaved; interleaved needs v > 1, stages >= 2 and microbatches % stages == 0.
void check_schedule(ScheduleKind kind, int stages, int microbatches, int virtual_stages);

// The actions of pipeline rank `stage` (0..stages-1) for one step. Checks the parameters.
std::vector<Action> make_schedule(ScheduleKind kind, int stage, int stages, int microbatches,
                                  int virtual_stages = 1);
// Forward only (evaluation): each microbatch through every chunk of the rank in turn, with its
// RecvAct / SendAct around each Forward as in make_schedule. Global stages run in increasing
// order and each rank visits its chunks in that order, so the chain of transfers cannot cycle.
std::vector<Action> make_forward_schedule(int stage, int stages, int microbatches, int virtual_stages = 1);
// make_schedule for every rank, indexed by stage.
std::vector<std::vector<Action>> make_all_schedules(ScheduleKind kind, int stages,
                                                    int microbatches, int virtual_stages = 1);

inline int global_stage(int stage, int stages, int chunk) { return chunk * stages + stage; }

// A pipeline rank and one of its chunks.
struct StageRef {
  int stage;
  int chunk;
  bool operator==(const StageRef&) const = default;
};
// The other end of a transfer action run by `stage`: the next global stage for SendAct and
// RecvGrad, the previous one for RecvAct and SendGrad. The message is the same microbatch.
StageRef transfer_peer(const Action& action, int stage, int stages, int virtual_stages = 1);

// Most microbatch-chunks forwarded and not yet backwarded at any point of the list.
int peak_in_flight(const std::vector<Action>& actions);
// What peak_in_flight gives for make_schedule(...): m for GPipe, min(p - s, m) for 1F1B,
// min(warm-up + 1, m * v) for interleaved.
int expected_peak_in_flight(ScheduleKind kind, int stage, int stages, int microbatches,
                            int virtual_stages = 1);

}  // namespace tessera
