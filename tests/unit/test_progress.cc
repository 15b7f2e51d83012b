// The progress display of `tessera train`: durations, the step line with ETA, the live line,
// when to redraw a line in place, the ETA clock and the step-time check against a prediction.
#include <catch2/catch.hpp>

#include <limits>

#include "launcher/progress.h"
#include "core/error.h"

using namespace tessera;

namespace {

StepMetrics metrics(int64_t step, int64_t max_steps) {
  StepMetrics m;
  m.step = step;
  m.max_steps = max_steps;
  m.loss = 2.1432;
  m.lr = 9.6e-4;
  m.grad_norm = 0.84;
  m.step_ms = 212;
  m.tokens_per_s = 14500;
  m.mfu = 0.381;
  m.mem_bytes = 412ll << 20;
  return m;
}

}  // namespace

TEST_CASE("format_duration keeps two units, rounded down", "[progress]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(45.9) == "45s");
  CHECK(format_duration(415) == "6m55s");
  CHECK(format_duration(3600 * 2 + 5 * 60 + 59) == "2h05m");
  CHECK(format_duration(86400 * 3 + 4 * 3600 + 10) == "3d04h");
  CHECK(format_duration(-3) == "0s");
  CHECK(format_duration(std::numeric_limits<double>::infinity()) == "0s");
}

TEST_CASE("the step line gets the time left, except on the last step", "[progress]") {
  const std::string line = format_progress_line(metrics(120, 2000), 415);
  CHECK(line.rfind(format_step_line(metrics(120, 2000)), 0) == 0);
  CHECK(line.ends_with(" | ETA 6m55s"));
  CHECK(line.starts_with("step 120/2000 | loss 2.1432 | "));
  CHECK(format_progress_line(metrics(2000, 2000), 0) == format_step_line(metrics(2000, 2000)));
  CHECK(line.find('\r') == std::string::npos);
}

TEST_CASE("the live line shows steps done of the total, percent, loss, step time and ETA", "[progress]") {
  CHECK(format_live_line(37, 2000, 2.43123, 212.4, 415) == "step 37/2000 (1.9%) | loss 2.4312 | 212 ms | ETA 6m55s");
}

TEST_CASE("a live line only on a terminal of our own", "[progress]") {
  CHECK(use_live_progress(ProgressMode::Auto, true, "none", "xterm-256color"));
  CHECK_FALSE(use_live_progress(ProgressMode::Auto, false, "none", "xterm"));        // batch log, pipe
  CHECK_FALSE(use_live_progress(ProgressMode::Auto, true, "OpenMPI", "xterm"));      // mpirun's pseudo-terminal
  CHECK_FALSE(use_live_progress(ProgressMode::Auto, true, "Slurm", "xterm"));
  CHECK_FALSE(use_live_progress(ProgressMode::Auto, true, "none", "dumb"));
  CHECK(use_live_progress(ProgressMode::Live, false, "OpenMPI", ""));
  CHECK_FALSE(use_live_progress(ProgressMode::Plain, true, "none", "xterm"));
  CHECK(parse_progress_mode("plain") == ProgressMode::Plain);
  CHECK_THROWS_WITH(parse_progress_mode("fancy"), "--progress fancy: must be auto, live or plain");
}

TEST_CASE("the ETA uses wall time per step since the first step", "[progress]") {
  using namespace std::chrono;
  EtaClock eta(100);
  const EtaClock::Clock::time_point t0{};
  eta.step_done(1, 500.0, t0);  // the first step alone: its own time
  CHECK(eta.eta_seconds() == Approx(99 * 0.5));
  eta.step_done(2, 100.0, t0 + milliseconds(200));
  eta.step_done(11, 100.0, t0 + milliseconds(3000));  // 10 steps in 3 s, evaluation included
  CHECK(eta.eta_seconds() == Approx(89 * 0.3));
  eta.step_done(100, 100.0, t0 + milliseconds(30000));
  CHECK(eta.eta_seconds() == 0);
}

TEST_CASE("a resumed run's ETA counts only the steps left", "[progress]") {
  EtaClock eta(50);
  const EtaClock::Clock::time_point t0{};
  eta.step_done(41, 100.0, t0);
  eta.step_done(45, 100.0, t0 + std::chrono::seconds(2));
  CHECK(eta.eta_seconds() == Approx(5 * 0.5));
}

TEST_CASE("the step-time check skips warm-up, then warns once past the tolerance", "[progress]") {
  SECTION("slower than predicted") {
    StepTimeCheck check(0.100, "cluster test, test.yaml", 3, 5, 0.25);
    for (int64_t s = 1; s <= 3; ++s) CHECK_FALSE(check.add(s, 900.0));  // warm-up: ignored
    for (int64_t s = 4; s <= 7; ++s) CHECK_FALSE(check.add(s, 150.0));
    const auto w = check.add(8, 150.0);
    REQUIRE(w);
    CHECK(*w == "warning: steps 4-8 took 150.0 ms per step (median) where the cost model predicted 100.0 ms (+50%; cluster "
                "test, test.yaml); `tessera plan --calibrate` measures this machine again and refreshes the "
                "prediction");
    for (int64_t s = 9; s <= 20; ++s) CHECK_FALSE(check.add(s, 150.0));  // once
  }
  SECTION("faster than predicted") {
    StepTimeCheck check(0.100, "m", 1, 2, 0.25);
    CHECK_FALSE(check.add(1, 10.0));
    CHECK_FALSE(check.add(2, 60.0));
    const auto w = check.add(3, 60.0);
    REQUIRE(w);
    CHECK(w->find("took 60.0 ms per step (median) where the cost model predicted 100.0 ms (-40%; m)") != std::string::npos);
  }
  SECTION("far off: a factor") {
    StepTimeCheck check(0.001, "m", 0, 1, 0.25);
    const auto w = check.add(1, 137.0);
    REQUIRE(w);
    CHECK(w->find("took 137.0 ms per step (median) where the cost model predicted 1.0 ms (137.0x; m)") != std::string::npos);
  }
  SECTION("one step slowed by another process does not decide it: the median") {
    StepTimeCheck check(0.100, "m", 0, 5, 0.25);
    for (double ms : {110.0, 95.0, 2000.0, 105.0}) CHECK_FALSE(check.add(1, ms));
    CHECK_FALSE(check.add(5, 100.0));
  }
  SECTION("within the tolerance: silent") {
    StepTimeCheck check(0.100, "m", 1, 2, 0.25);
    for (int64_t s = 1; s <= 10; ++s) CHECK_FALSE(check.add(s, 124.0));
  }
}
