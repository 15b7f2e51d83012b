// Named tensor-parallel communication pairs.
#include "runtime/model/tensor_parallel.h"

#include <chrono>

namespace tessera {
namespace {

// Adds the time from construction to destruction to tp.stats, when it is set.
class CommTimer {
 public:
  explicit CommTimer(const TpGroup& tp) : stats_(tp.stats), start_(std::chrono::steady_clock::now()) {}
  ~CommTimer() {
    if (stats_) stats_->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  CommTimer(const CommTimer&) = delete;
  CommTimer& operator=(const CommTimer&) = delete;

 private:
  TpCommStats* stats_;
  std::chrono::steady_clock::time_point start_;
};

Tensor all_reduced(const Tensor& x, const TpGroup& tp) {
  if (tp.size == 1) return x;
  Tensor y = x.clone();
  tp_all_reduce(y, ReduceOp::Sum, tp);
  return y;
}

Tensor rows_gathered(const Tensor& shard, const TpGroup& tp) {
  if (tp.size == 1) return shard;
  Shape full = shard.shape();
  full[0] *= tp.size;
  Tensor out = Tensor::empty(full, shard.dtype(), shard.device());
  const CommTimer timer(tp);
  tp.comm->all_gather(shard, out);
  return out;
}

Tensor rows_reduce_scattered(const Tensor& full, const TpGroup& tp) {
  if (tp.size == 1) return full;
  TESSERA_CHECK(full.dim(0) % tp.size == 0, "sequence parallelism: {} rows do not split over tp {}",
                full.dim(0), tp.size);
  Shape part = full.shape();
  part[0] /= tp.size;
  Tensor out = Tensor::empty(part, DType::F32, full.device());
  const CommTimer timer(tp);
  tp.comm->reduce_scatter(full, out, ReduceOp::Sum);
  return out;
}

}  // namespace

void tp_all_reduce(Tensor& t, ReduceOp op, const TpGroup& tp) {
  if (tp.size == 1) return;
  const CommTimer timer(tp);
  tp.comm->all_reduce(t, op);
}

Tensor copy_to_tp_forward(const Tensor& x, const TpGroup&) { return x; }
Tensor copy_to_tp_backward(const Tensor& dx, const TpGroup& tp) { return all_reduced(dx, tp); }

Tensor reduce_from_tp_forward(const Tensor& y, const TpGroup& tp) { return all_reduced(y, tp); }
Tensor reduce_from_tp_backward(const Tensor& dy, const TpGroup&) { return dy; }

Tensor gather_from_sp_forward(const Tensor& x_shard, const TpGroup& tp) { return rows_gathered(x_shard, tp); }
Tensor gather_from_sp_backward(const Tensor& dx_full, const TpGroup& tp) {
  return rows_reduce_scattered(dx_full, tp);
}

Tensor scatter_to_sp_forward(const Tensor& y_partial, const TpGroup& tp) {
  return rows_reduce_scattered(y_partial, tp);
}
Tensor scatter_to_sp_backward(const Tensor& dy_shard, const TpGroup& tp) { return rows_gathered(dy_shard, tp); }

Tensor enter_tp_region_forward(const Tensor& x, const TpGroup& tp) {
  return tp.sequence_parallel ? gather_from_sp_forward(x, tp) : copy_to_tp_forward(x, tp);
}
Tensor enter_tp_region_backward(const Tensor& dx, const TpGroup& tp) {
  return tp.sequence_parallel ? gather_from_sp_backward(dx, tp) : copy_to_tp_backward(dx, tp);
}
Tensor exit_tp_region_forward(const Tensor& y, const TpGroup& tp) {
  return tp.sequence_parallel ? scatter_to_sp_forward(y, tp) : reduce_from_tp_forward(y, tp);
}
Tensor exit_tp_region_backward(const Tensor& dy, const TpGroup& tp) {
  return tp.sequence_parallel ? scatter_to_sp_backward(dy, tp) : reduce_from_tp_backward(dy, tp);
}

}  // namespace tessera
