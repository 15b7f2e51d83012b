// Bucketed, overlapped data-parallel gradient reduction.
#include "runtime/train/grad_sync.h"

#include <algorithm>

namespace tessera {
namespace {

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

GradientSync::GradientSync(FlatParameters& flat, Communicator& dp, double bucket_bytes, int zero_stage,
                           DType reduce_dtype, Backend& ops)
    : flat_(flat), dp_(dp), zero_stage_(zero_stage), reduce_dtype_(reduce_dtype), ops_(ops) {
  TESSERA_CHECK(reduce_dtype == DType::F32 || reduce_dtype == DType::BF16, "gradient reduction in {} is not supported",
                dtype_name(reduce_dtype));
  if (zero_stage_ == 1) {
    shard_numel_ = flat_.numel() / dp_.size();
    shard_offset_ = shard_numel_ * dp_.rank();
    shard_grads_ = Tensor::zeros({shard_numel_}, DType::F32, flat.grads().device());
    return;
  }
  // Segments are in backward order, so cutting them into runs gives buckets in the order
  // their gradients become ready. A bucket never splits a parameter.
  const int64_t bucket_elems = bucket_bytes > 0 ? std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / 4)) : flat_.numel();
  Bucket current;
  for (const FlatSegment& s : flat_.segments()) {
    if (current.numel > 0 && current.numel + s.numel > bucket_elems) {
      buckets_.push_back(std::move(current));
      current = Bucket{};
      current.offset = s.offset;
    }
    current.numel += s.numel;
    current.last_layer = s.layer;
  }
  // The padding at the end rides with the last bucket.
  current.numel = flat_.numel() - current.offset;
  buckets_.push_back(std::move(current));
}

void GradientSync::complete(Bucket& b) {
  b.complete = true;
  b.done = std::chrono::steady_clock::now();
  if (b.staging.defined()) {
    Tensor range = flat_.grads().narrow(b.offset, b.numel);
    ops_.cast(b.staging, range);
    b.staging = Tensor();
  }
}

void GradientSync::poll() {
  for (Bucket& b : buckets_) {
    if (b.request && !b.complete && b.request->test()) complete(b);
  }
}

void GradientSync::on_layer_backward_done(int layer) {
  if (zero_stage_ == 1) return;
  // Layers finish in decreasing index order; a bucket is ready when its lowest layer is done.
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].last_layer >= layer) {
    Bucket& b = buckets_[next_bucket_++];
    Tensor range = flat_.grads().narrow(b.offset, b.numel);
    b.launched = std::chrono::steady_clock::now();
    if (reduce_dtype_ == DType::BF16) {
      b.staging = Tensor::empty({b.numel}, DType::BF16, range.device());
      ops_.cast(range, b.staging);
      b.request = dp_.all_reduce_async(b.staging, ReduceOp::Sum);
    } else {
      b.request = dp_.all_reduce_async(range, ReduceOp::Sum);
    }
  }
  poll();
}

void GradientSync::finish() {
  const auto backward_end = std::chrono::steady_clock::now();
  stats_ = GradSyncStats{};
  if (zero_stage_ == 1) {
    if (reduce_dtype_ == DType::BF16) {
      const Device device = flat_.grads().device();
      Tensor all = Tensor::empty({flat_.numel()}, DType::BF16, device);
      Tensor mine = Tensor::empty({shard_numel_}, DType::BF16, device);
      ops_.cast(flat_.grads(), all);
      dp_.reduce_scatter(all, mine, ReduceOp::Sum);
      ops_.cast(mine, shard_grads_);
    } else {
      dp_.reduce_scatter(flat_.grads(), shard_grads_, ReduceOp::Sum);
    }
    stats_.exposed_ms = stats_.comm_span_ms = ms_between(backward_end, std::chrono::steady_clock::now());
    stats_.buckets = 1;
    return;
  }
  on_layer_backward_done(-1);  // launches anything not launched yet
  for (Bucket& b : buckets_) {
    if (!b.complete) {
      b.request->wait();
      complete(b);
    }
  }
  const auto end = std::chrono::steady_clock::now();
  stats_.exposed_ms = ms_between(backward_end, end);
  auto first = buckets_.front().launched;
  auto last = buckets_.front().done;
  for (Bucket& b : buckets_) {
    first = std::min(first, b.launched);
    last = std::max(last, b.done);
    b.request.reset();
    b.complete = false;
  }
  stats_.comm_span_ms = ms_between(first, last);
  stats_.buckets = static_cast<int>(buckets_.size());
  next_bucket_ = 0;
}

}  // namespace tessera
