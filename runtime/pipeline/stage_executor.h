// StageExecutor: runs one pipeline rank's action list (partitioner/schedule.h) for a step:
// forward and backward of its model chunks per microbatch, with activations sent to the next
// stage and gradients to the previous one by non-blocking point-to-point calls on the pp
// group. On MPI receives are posted ahead of the compute that needs them (a lookahead over the
// action list), so transfers overlap compute; on NCCL, where a send holds its stream until the
// receiver takes it, they are issued in groups by plan_stream_transfers (partitioner). A head tied to the embedding on another stage
// has its table's gradient summed with the first stage's when the step's actions are done
// (tied_embeddings.h), unless the caller took that over (take_tied_embeddings).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "partitioner/schedule.h"
#include "runtime/comm/communicator.h"
#include "runtime/model/model.h"
#include "runtime/pipeline/tied_embeddings.h"
#include "runtime/train/trace.h"

namespace tessera {

struct PipelineLayout {
  Communicator* pp = nullptr;  // may be null when stages == 1
  int stage = 0;               // this rank's index in the pp group
  int stages = 1;
  int virtual_stages = 1;
  // What activations and their gradients travel in between stages: the compute dtype (half the
  // bytes under bf16/fp16); widened back to fp32 on arrival.
  DType wire_dtype = DType::F32;
  Device device = Device::cpu();  // where the compute runs: receive buffers live there
  int global_stage(int chunk) const { return chunk * stages + stage; }
  int global_stages() const { return stages * virtual_stages; }
};

class StageExecutor {
 public:
  // chunks[c] is model chunk c of this rank (global stage c * stages + stage). With
  // full_recompute, forward keeps only each chunk's input and backward runs forward again.
  // Collective over layout.pp (the tied-embedding group is agreed and split here).
  StageExecutor(std::vector<Model*> chunks, PipelineLayout layout, bool full_recompute, TraceRecorder* trace);

  using ContextFn = std::function<MicrobatchContext(int microbatch)>;
  // Runs the actions of one training step; returns the microbatch losses ([1] each, where the
  // model computes: a GPU's stay on the device for the caller's one read) on the rank holding the
  // last global stage, none on the others.
  std::vector<Tensor> run(const std::vector<Action>& actions, const ContextFn& make_ctx, int64_t B, int64_t T);
  // Forward only (evaluation), microbatch by microbatch through all stages; same return.
  std::vector<Tensor> forward_only(int microbatches, const ContextFn& make_ctx, int64_t B, int64_t T);

  // The most microbatch-chunks whose activations this rank held at once in the last run.
  int peak_in_flight() const { return peak_in_flight_; }
  // Hands the tied-embedding sum over to the caller (null when nothing is tied), which then runs
  // it itself: ZeRO-2/3 sum the table's gradient blocks once every reduce-scatter has landed.
  std::unique_ptr<TiedEmbeddingSync> take_tied_embeddings() { return std::move(tied_); }

 private:
  using Key = std::pair<int, int>;  // (microbatch, chunk)
  struct PendingRecv {
    Tensor buffer;
    std::unique_ptr<CommRequest> request;
  };
  struct PendingSend {
    Tensor buffer;
    std::unique_ptr<CommRequest> request;
  };
  bool is_last(int chunk) const { return layout_.global_stage(chunk) == layout_.global_stages() - 1; }
  bool is_first(int chunk) const { return layout_.global_stage(chunk) == 0; }
  int peer_rank(int global_stage) const { return global_stage % layout_.stages; }
  int tag(int microbatch, int boundary, bool gradient) const;
  void post_recv(const Action& a, int64_t B, int64_t T);
  Tensor take_recv(ActionKind kind, const Key& key, int microbatch, int chunk);
  void send(const Tensor& t, int to_global_stage, int tag_value, const char* name, int microbatch, int chunk);
  void forward(const Key& key, const ContextFn& make_ctx, bool training);
  void backward(const Key& key, const ContextFn& make_ctx);
  void finish_sends();
  void run_action(const Action& a, const ContextFn& make_ctx, int64_t B, int64_t T, bool training);
  std::vector<Tensor> execute(const std::vector<Action>& actions, const ContextFn& make_ctx, int64_t B, int64_t T,
                              bool training);

  std::vector<Model*> chunks_;
  PipelineLayout layout_;
  std::unique_ptr<TiedEmbeddingSync> tied_;  // null unless the head is tied across stages
  bool full_recompute_;
  bool stream_ordered_ = false;  // the pp group's transfers run in issue order on a stream (NCCL)
  TraceRecorder* trace_;
  std::map<std::pair<int, Key>, PendingRecv> recvs_;  // (kind as int, key)
  std::map<Key, Tensor> outputs_, input_grads_, inputs_;
  std::vector<PendingSend> sends_;
  std::vector<Tensor> losses_;  // of the run in progress
  int in_flight_ = 0, peak_in_flight_ = 0;
};

}  // namespace tessera
