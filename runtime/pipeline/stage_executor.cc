// Pipeline stage executor.
#include "runtime/pipeline/stage_executor.h"

#include "partitioner/stream_transfers.h"
#include "runtime/compute/compute.h"

namespace tessera {
namespace {

// How many actions ahead receives are posted: far enough to cover the next forward and
// backward of the steady state, short enough that 1F1B does not allocate buffers for every
// microbatch at once.
constexpr size_t kRecvLookahead = 6;

using Clock = TraceRecorder::Clock;

}  // namespace

StageExecutor::StageExecutor(std::vector<Model*> chunks, PipelineLayout layout, bool full_recompute,
                             TraceRecorder* trace)
    : chunks_(std::move(chunks)), layout_(layout), full_recompute_(full_recompute), trace_(trace) {
  TESSERA_CHECK(static_cast<int>(chunks_.size()) == layout_.virtual_stages, "{} chunks for {} virtual stages",
                chunks_.size(), layout_.virtual_stages);
  std::vector<Parameter*> params;
  for (Model* m : chunks_) {
    for (Parameter* p : m->parameters()) params.push_back(p);
  }
  tied_ = TiedEmbeddingSync::create(layout_.pp, params, layout_.device);
  stream_ordered_ = layout_.pp != nullptr && layout_.pp->stream_ordered_p2p();
}

int StageExecutor::tag(int microbatch, int boundary, bool gradient) const {
  // Unique per (microbatch, stage boundary, direction): transfers may arrive in any order.
  return (microbatch * layout_.global_stages() + boundary) * 2 + (gradient ? 1 : 0);
}

void StageExecutor::post_recv(const Action& a, int64_t B, int64_t T) {
  const bool grad = a.kind == ActionKind::RecvGrad;
  const auto id = std::make_pair(static_cast<int>(a.kind), Key{a.microbatch, a.chunk});
  if (recvs_.count(id)) return;
  const int g = layout_.global_stage(a.chunk);
  Model& m = *chunks_[a.chunk];
  // Activations come from stage g - 1 over boundary g - 1; gradients from g + 1 over g.
  const Shape shape = grad ? m.layers().back()->output_shape(B, T) : m.layers().front()->input_shape(B, T);
  PendingRecv r;
  r.buffer = Tensor::empty(shape, layout_.wire_dtype, layout_.device);
  const int from = grad ? g + 1 : g - 1;
  r.request = layout_.pp->recv(r.buffer, peer_rank(from), tag(a.microbatch, grad ? g : g - 1, grad));
  recvs_.emplace(id, std::move(r));
}

Tensor StageExecutor::take_recv(ActionKind kind, const Key& key, int microbatch, int chunk) {
  auto it = recvs_.find({static_cast<int>(kind), key});
  TESSERA_CHECK(it != recvs_.end(), "no receive posted for microbatch {} chunk {}", microbatch, chunk);
  const auto start = Clock::now();
  it->second.request->wait();
  if (trace_) {
    trace_->add(kind == ActionKind::RecvGrad ? "recv_grad" : "recv_act", "comm", start, Clock::now(), microbatch,
                chunk);
  }
  Tensor t = it->second.buffer;
  recvs_.erase(it);
  return t;
}

void StageExecutor::send(const Tensor& t, int to_global_stage, int tag_value, const char* name, int microbatch,
                         int chunk) {
  const auto start = Clock::now();
  PendingSend s{t, layout_.pp->send(t, peer_rank(to_global_stage), tag_value)};
  sends_.push_back(std::move(s));
  if (trace_) trace_->add(name, "comm", start, Clock::now(), microbatch, chunk);
  // Drop completed sends so their buffers are freed as the step goes.
  std::erase_if(sends_, [](PendingSend& p) { return p.request->test(); });
}

void StageExecutor::forward(const Key& key, const ContextFn& make_ctx, bool training) {
  const auto [mb, c] = key;
  MicrobatchContext ctx = make_ctx(mb);
  ctx.microbatch = mb;
  const Tensor x = is_first(c) ? Tensor() : ctx.math().to_f32(take_recv(ActionKind::RecvAct, key, mb, c));
  ctx.training = training && !full_recompute_;
  const auto start = Clock::now();
  const Tensor y = chunks_[c]->forward(x, ctx);
  if (trace_) trace_->add("forward", "compute", start, Clock::now(), mb, c);
  if (is_last(c)) {
    losses_.push_back(y);
  } else {
    outputs_[key] = ctx.math().to_compute(y);
  }
  if (training) {
    if (full_recompute_) inputs_[key] = x;
    peak_in_flight_ = std::max(peak_in_flight_, ++in_flight_);
  }
}

void StageExecutor::backward(const Key& key, const ContextFn& make_ctx) {
  const auto [mb, c] = key;
  MicrobatchContext ctx = make_ctx(mb);
  ctx.microbatch = mb;
  const Tensor dy = is_last(c) ? Tensor() : ctx.math().to_f32(take_recv(ActionKind::RecvGrad, key, mb, c));
  const auto start = Clock::now();
  if (full_recompute_) {
    // Recompute the chunk's activations from its saved input, saving them this time.
    auto it = inputs_.find(key);
    TESSERA_CHECK(it != inputs_.end(), "no saved input to recompute microbatch {} chunk {}", mb, c);
    chunks_[c]->forward(it->second, ctx);
    inputs_.erase(it);
  }
  const Tensor dx = chunks_[c]->backward(dy, ctx);
  if (trace_) trace_->add(full_recompute_ ? "backward+recompute" : "backward", "compute", start, Clock::now(), mb, c);
  if (!is_first(c)) input_grads_[key] = ctx.math().to_compute(dx);
  --in_flight_;
}

void StageExecutor::finish_sends() {
  for (PendingSend& s : sends_) s.request->wait();
  sends_.clear();
}

void StageExecutor::run_action(const Action& a, const ContextFn& make_ctx, int64_t B, int64_t T, bool training) {
  const Key key{a.microbatch, a.chunk};
  const int g = layout_.global_stage(a.chunk);
  switch (a.kind) {
    case ActionKind::RecvAct:
    case ActionKind::RecvGrad:
      post_recv(a, B, T);  // unless posted ahead; the compute that needs it waits for it
      break;
    case ActionKind::Forward:
      forward(key, make_ctx, training);
      break;
    case ActionKind::Backward:
      backward(key, make_ctx);
      break;
    case ActionKind::SendAct: {
      auto it = outputs_.find(key);
      TESSERA_CHECK(it != outputs_.end(), "no activation to send for microbatch {} chunk {}", a.microbatch, a.chunk);
      send(it->second, g + 1, tag(a.microbatch, g, false), "send_act", a.microbatch, a.chunk);
      outputs_.erase(it);
      break;
    }
    case ActionKind::SendGrad: {
      auto it = input_grads_.find(key);
      TESSERA_CHECK(it != input_grads_.end(), "no gradient to send for microbatch {} chunk {}", a.microbatch, a.chunk);
      send(it->second, g - 1, tag(a.microbatch, g - 1, true), "send_grad", a.microbatch, a.chunk);
      input_grads_.erase(it);
      break;
    }
  }
}

std::vector<Tensor> StageExecutor::execute(const std::vector<Action>& actions, const ContextFn& make_ctx, int64_t B,
                                           int64_t T, bool training) {
  losses_.clear();
  if (stream_ordered_) {
    // NCCL: each step's sends and the next step's receives as one group, never receives ahead.
    for (const StreamStep& step : plan_stream_transfers(actions, layout_.virtual_stages)) {
      if (step.group.empty()) {
        run_action(actions[step.compute], make_ctx, B, T, training);
        continue;
      }
      layout_.pp->begin_p2p_group();
      for (size_t i : step.group) run_action(actions[i], make_ctx, B, T, training);
      layout_.pp->end_p2p_group();
    }
  } else {
    for (size_t i = 0; i < actions.size(); ++i) {
      for (size_t j = i; j < actions.size() && j <= i + kRecvLookahead; ++j) {
        const Action& ahead = actions[j];
        if (ahead.kind == ActionKind::RecvAct || ahead.kind == ActionKind::RecvGrad) post_recv(ahead, B, T);
      }
      run_action(actions[i], make_ctx, B, T, training);
    }
  }
  finish_sends();
  TESSERA_CHECK(recvs_.empty() && outputs_.empty() && input_grads_.empty() && in_flight_ == 0,
                "pipeline step ended with work left: {} receives, {} activations, {} gradients, {} in flight",
                recvs_.size(), outputs_.size(), input_grads_.size(), in_flight_);
  return std::move(losses_);
}

std::vector<Tensor> StageExecutor::run(const std::vector<Action>& actions, const ContextFn& make_ctx, int64_t B,
                                       int64_t T) {
  in_flight_ = peak_in_flight_ = 0;  // evaluation (forward_only) keeps the last step's peak
  std::vector<Tensor> losses = execute(actions, make_ctx, B, T, true);
  if (tied_) {
    const auto start = Clock::now();
    tied_->reduce_gradients();
    if (trace_) trace_->add("tied_embedding_grad", "comm", start, Clock::now());
  }
  return losses;
}

std::vector<Tensor> StageExecutor::forward_only(int microbatches, const ContextFn& make_ctx, int64_t B, int64_t T) {
  return execute(make_forward_schedule(layout_.stage, layout_.stages, microbatches, layout_.virtual_stages), make_ctx,
                 B, T, false);
}

}  // namespace tessera
