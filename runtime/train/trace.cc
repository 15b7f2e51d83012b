// Trace recording and the merged Chrome trace file.
#include "runtime/train/trace.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessera {
namespace {

int64_t micros(TraceRecorder::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::string rank_file(const std::string& path, int rank) { return fmt::format("{}.rank{}", path, rank); }

}  // namespace

TraceRecorder::TraceRecorder(int rank, std::string label) : rank_(rank), label_(std::move(label)) {}

void TraceRecorder::set_step(int64_t step, bool enabled) {
  step_ = step;
  enabled_ = enabled;
}

void TraceRecorder::add(const std::string& name, const std::string& category, Clock::time_point start,
                        Clock::time_point end, int microbatch, int chunk) {
  if (!enabled_) return;
  events_.push_back({name, category, micros(start), micros(end) - micros(start), step_, microbatch, chunk});
}

void TraceRecorder::write(const std::string& path, Communicator& world) const {
  const auto parent = std::filesystem::path(path).parent_path();
  if (world.rank() == 0 && !parent.empty()) std::filesystem::create_directories(parent);
  world.barrier();
  nlohmann::json mine = nlohmann::json::array();
  mine.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", rank_}, {"args", {{"name", label_}}}});
  mine.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", rank_}, {"args", {{"sort_index", rank_}}}});
  for (const TraceEvent& e : events_) {
    nlohmann::json args = {{"step", e.step}};
    if (e.microbatch >= 0) args["microbatch"] = e.microbatch;
    if (e.chunk >= 0) args["chunk"] = e.chunk;
    const std::string name = e.microbatch >= 0 ? fmt::format("{} {}", e.name, e.microbatch) : e.name;
    mine.push_back({{"name", name}, {"cat", e.category}, {"ph", "X"}, {"ts", e.start_us}, {"dur", e.duration_us},
                    {"pid", rank_}, {"tid", e.category == "comm" ? 1 : 0}, {"args", args}});
  }
  {
    std::ofstream out(rank_file(path, world.rank()));
    out << mine.dump();
    TESSERA_REQUIRE(out.good(), "{}: cannot write the trace (log.trace)", rank_file(path, world.rank()));
  }
  world.barrier();
  if (world.rank() != 0) return;
  nlohmann::json merged = {{"traceEvents", nlohmann::json::array()}, {"displayTimeUnit", "ms"}};
  for (int r = 0; r < world.size(); ++r) {
    std::ifstream in(rank_file(path, r));
    for (auto& e : nlohmann::json::parse(in)) merged["traceEvents"].push_back(std::move(e));
    in.close();
    std::filesystem::remove(rank_file(path, r));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << merged.dump();
    TESSERA_REQUIRE(out.good(), "{}: cannot write the trace (log.trace)", tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace tessera
