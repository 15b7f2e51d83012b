// Text output of the planner: the ranked table of layouts, the rejections summary, one plan's
// details, and the byte sizes users type ("24GiB"). Pure functions, so tests can read them.
#pragma once

#include <string>

#include "partitioner/layout_search.h"

namespace tessera {

// "24GiB", "24 GiB", "24G" (binary), "80GB" (decimal), "512MiB", "1.5TiB", "4096B". The unit
// is required. Throws InputError naming `what` for anything else.
double parse_byte_size(const std::string& text, const std::string& what = "memory cap");

// "12.3 ms", "1.42 s".
std::string format_seconds(double s);
// "14.5k", "2.31M".
std::string format_rate(double per_s);

// The top `top` plans, one row each: rank, layout, partition, step time, tokens/s, MFU,
// memory per rank (largest stage), bubble.
std::string format_plan_table(const SearchResult& result, int top);

// Every structural rejection (one line each) and the memory rejections, the closest first,
// up to `max_memory_lines` of them, then a count of the rest.
std::string format_rejections(const SearchResult& result, int max_memory_lines = 8);

// One plan in detail: per-stage layers, time and memory by kind, and the step breakdown.
std::string format_plan_details(const PartitionPlan& plan);

}  // namespace tessera
