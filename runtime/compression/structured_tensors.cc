// Row and column helpers of structured pruning (see structured_tensors.h).
#include "runtime/compression/structured_tensors.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace tessera::structured {

std::string block(int layer) { return "h." + std::to_string(layer); }

const Tensor& get(const std::map<std::string, Tensor>& w, const std::string& name) {
  const auto it = w.find(name);
  TESSERA_REQUIRE(it != w.end(), "structured pruning: the checkpoint has no tensor '{}'", name);
  return it->second;
}

double row_sq(const Tensor& t, int64_t row) {
  const int64_t k = t.dim(1);
  const float* p = t.f32() + row * k;
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

double col_sq(const Tensor& t, int64_t col) {
  double s = 0;
  for (int64_t r = 0; r < t.dim(0); ++r) {
    const double v = t.f32()[r * t.dim(1) + col];
    s += v * v;
  }
  return s;
}

std::vector<int64_t> head_span(const std::vector<int64_t>& heads, int64_t width) {
  std::vector<int64_t> rows;
  for (int64_t h : heads) {
    for (int64_t d = 0; d < width; ++d) rows.push_back(h * width + d);
  }
  return rows;
}

Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  Shape shape = t.shape();
  const int64_t k = t.numel() / shape[0];
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape);
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(out.f32() + i * k, t.f32() + rows[i] * k, sizeof(float) * k);
  return out;
}

Tensor take_cols(const Tensor& t, const std::vector<int64_t>& cols) {
  const int64_t R = t.dim(0), K = t.dim(1), n = static_cast<int64_t>(cols.size());
  Tensor out = Tensor::empty({R, n});
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < n; ++j) out.f32()[r * n + j] = t.f32()[r * K + cols[j]];
  }
  return out;
}

void zero_rows(Tensor& t, const std::vector<int64_t>& rows) {
  const int64_t k = t.numel() / t.dim(0);
  for (int64_t r : rows) std::fill(t.f32() + r * k, t.f32() + (r + 1) * k, 0.f);
}

void zero_cols(Tensor& t, const std::vector<int64_t>& cols) {
  for (int64_t r = 0; r < t.dim(0); ++r) {
    for (int64_t c : cols) t.f32()[r * t.dim(1) + c] = 0.f;
  }
}

std::vector<int64_t> complement(const std::vector<int64_t>& keep, int64_t n) {
  std::vector<bool> kept(n, false);
  for (int64_t i : keep) kept[i] = true;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (!kept[i]) out.push_back(i);
  }
  return out;
}

std::vector<int64_t> top(const std::vector<double>& scores, int64_t keep) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.resize(keep);
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace tessera::structured
