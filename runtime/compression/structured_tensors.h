// Row and column surgery on global [out, in] weights for structured pruning: squared norms of
// rows and columns, taking kept rows or columns, the row indices of whole heads, and picking
// the highest-scored structures. Shared by the GPT and Llama pruning.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace tessera::structured {

std::string block(int layer);  // "h.<layer>"
// The tensor `name`; InputError naming it when the checkpoint lacks it.
const Tensor& get(const std::map<std::string, Tensor>& weights, const std::string& name);

double row_sq(const Tensor& t, int64_t row);  // sum of squares of a [R, K] matrix's row
double col_sq(const Tensor& t, int64_t col);  // ... of its column

// Rows h * width .. h * width + width - 1 of each listed head h, in order.
std::vector<int64_t> head_span(const std::vector<int64_t>& heads, int64_t width);

// Rows of a [R, K] matrix (or entries of a [R] vector); columns of a [R, K] matrix.
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& rows);
Tensor take_cols(const Tensor& t, const std::vector<int64_t>& cols);
void zero_rows(Tensor& t, const std::vector<int64_t>& rows);
void zero_cols(Tensor& t, const std::vector<int64_t>& cols);

// The indices in [0, n) not in `keep`, ascending.
std::vector<int64_t> complement(const std::vector<int64_t>& keep, int64_t n);
// Indices of the `keep` highest scores, ascending; ties keep the lower index.
std::vector<int64_t> top(const std::vector<double>& scores, int64_t keep);

}  // namespace tessera::structured
