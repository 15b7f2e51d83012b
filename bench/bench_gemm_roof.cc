// The machine's fp32 GEMM roof as the project's own gemm kernel reaches it (square sgemm,
// 256..2048, 1 and 2 threads), then linear_forward / linear_backward and the attention core
// at the shapes of configs/shakespeare_char.yaml (rows = 12 x 64 = 768), each as GFLOP/s and
// as a fraction of the roof at the same thread count, and what they add up to per training
// step. Best of several timed repeats; the machine is shared, so the best is the estimate.
// Usage: bench_gemm_roof [max_threads (default 2)] [max_size (default 2048)]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"

namespace {

namespace k = tessera::kernels::cpu;

std::vector<float> random_buffer(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

struct Timing {
  double best_s;
  double median_s;
};

// Seconds per call of fn: calls are batched until a batch takes >= min_batch_s, then
// `repeats` batches are timed (after one untimed warm-up batch).
Timing time_call(const std::function<void()>& fn, int repeats = 7, double min_batch_s = 0.05) {
  using clock = std::chrono::steady_clock;
  auto run = [&](int calls) {
    const auto t0 = clock::now();
    for (int i = 0; i < calls; ++i) fn();
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  int calls = 1;
  for (double s = run(calls); s < min_batch_s; s = run(calls)) calls *= 2;
  std::vector<double> per_call;
  for (int r = 0; r < repeats; ++r) per_call.push_back(run(calls) / calls);
  std::sort(per_call.begin(), per_call.end());
  return {per_call.front(), per_call[per_call.size() / 2]};
}

// Best GFLOP/s of an n^3 sgemm (C = A B) on the project's gemm.
double square_gemm(int64_t n, double* median_gflops) {
  const auto a = random_buffer(n * n, 1), b = random_buffer(n * n, 2);
  std::vector<float> c(n * n);
  const Timing t = time_call([&] {
    k::gemm(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  });
  const double flops = 2.0 * n * n * n;
  *median_gflops = flops / t.median_s / 1e9;
  return flops / t.best_s / 1e9;
}

struct LinearShape {
  const char* name;
  int64_t in, out;
  bool bias;
  int per_step;  // calls per training step of the shakespeare model (4 layers + head)
};

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t max_size = argc > 2 ? std::atoll(argv[2]) : 2048;
  std::vector<int> thread_counts;
  for (int t = 1; t <= max_threads; t *= 2) thread_counts.push_back(t);
  if (thread_counts.back() != max_threads) thread_counts.push_back(max_threads);

  std::printf("# fp32 GEMM roof: tessera::kernels::cpu::gemm, C[n,n] = A[n,n] B[n,n], best (median) GFLOP/s\n");
  std::printf("%8s", "n");
  for (int t : thread_counts) std::printf("  %9s%-2d %-10s", "threads=", t, "");
  std::printf("\n");
  std::vector<double> roof(thread_counts.size(), 0.0);
  for (int64_t n = 256; n <= max_size; n *= 2) {
    std::printf("%8lld", static_cast<long long>(n));
    for (size_t i = 0; i < thread_counts.size(); ++i) {
      omp_set_num_threads(thread_counts[i]);
      double median = 0;
      const double best = square_gemm(n, &median);
      roof[i] = std::max(roof[i], best);
      std::printf("  %9.1f (%7.1f)", best, median);
    }
    std::printf("\n");
  }
  std::printf("%8s", "roof");
  for (double r : roof) std::printf("  %9.1f %9s", r, "");
  std::printf("\n\n");

  // The Linear layers of configs/shakespeare_char.yaml: N = batch 12 x seq 64 rows.
  const int64_t N = 12 * 64, B = 12, T = 64, H = 4, D = 32;
  const LinearShape shapes[] = {
      {"attn.c_attn (qkv)", 128, 384, true, 4}, {"attn.c_proj", 128, 128, false, 4},
      {"mlp.c_fc", 128, 512, true, 4},          {"mlp.c_proj", 512, 128, false, 4},
      {"lm_head", 128, 65, false, 1},
  };
  for (size_t i = 0; i < thread_counts.size(); ++i) {
    const int threads = thread_counts[i];
    omp_set_num_threads(threads);
    std::printf("# rows %lld, %d thread%s: GFLOP/s (fraction of the %.1f GFLOP/s roof), us per call\n",
                static_cast<long long>(N), threads, threads > 1 ? "s" : "", roof[i]);
    std::printf("%-20s %10s %-18s %9s  %-18s %9s %5s\n", "layer", "in->out", "forward", "us",
                "backward", "us", "/step");
    double step_us = 0, step_flops = 0;
    for (const LinearShape& s : shapes) {
      const auto x = random_buffer(N * s.in, 3), w = random_buffer(s.out * s.in, 4);
      const auto b = random_buffer(s.out, 5), dy = random_buffer(N * s.out, 6);
      std::vector<float> y(N * s.out), dx(N * s.in), dw(s.out * s.in), db(s.out);
      const Timing f = time_call([&] {
        k::linear_forward(y.data(), x.data(), w.data(), s.bias ? b.data() : nullptr, N, s.in, s.out);
      });
      const Timing bw = time_call([&] {
        // The model adds the bias gradient with bias_backward outside when it has no
        // fused bias; the dinp and dweight GEMMs are what matters here.
        k::linear_backward(dx.data(), dw.data(), s.bias ? db.data() : nullptr, dy.data(), x.data(),
                           w.data(), N, s.in, s.out);
      });
      const double fwd_flops = 2.0 * N * s.in * s.out, bwd_flops = 2 * fwd_flops;
      const double gf = fwd_flops / f.best_s / 1e9, gb = bwd_flops / bw.best_s / 1e9;
      char in_out[32];
      std::snprintf(in_out, sizeof in_out, "%lld->%lld", static_cast<long long>(s.in),
                    static_cast<long long>(s.out));
      std::printf("%-20s %10s %6.1f (%5.1f%%)    %9.1f  %6.1f (%5.1f%%)    %9.1f %5d\n", s.name,
                  in_out, gf, 100 * gf / roof[i], f.best_s * 1e6, gb, 100 * gb / roof[i],
                  bw.best_s * 1e6, s.per_step);
      step_us += s.per_step * (f.best_s + bw.best_s) * 1e6;
      step_flops += s.per_step * (fwd_flops + bwd_flops);
    }
    {
      // Causal attention core, per layer; FLOPs of the two batched matmuls, full T x T.
      const auto qkv = random_buffer(N * 3 * H * D, 7), dout = random_buffer(N * H * D, 8);
      std::vector<float> out(N * H * D), probs(B * H * T * T), dqkv(N * 3 * H * D);
      const Timing f = time_call([&] { k::attention_forward(out.data(), probs.data(), qkv.data(), B, T, H, D); });
      const Timing bw = time_call([&] {
        k::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), B, T, H, D);
      });
      const double fwd_flops = 4.0 * B * H * T * T * D, bwd_flops = 2 * fwd_flops;
      const double gf = fwd_flops / f.best_s / 1e9, gb = bwd_flops / bw.best_s / 1e9;
      std::printf("%-20s %10s %6.1f (%5.1f%%)    %9.1f  %6.1f (%5.1f%%)    %9.1f %5d\n",
                  "attention core", "T=64,H=4", gf, 100 * gf / roof[i], f.best_s * 1e6, gb,
                  100 * gb / roof[i], bw.best_s * 1e6, 4);
      step_us += 4 * (f.best_s + bw.best_s) * 1e6;
      step_flops += 4 * (fwd_flops + bwd_flops);
    }
    std::printf("sum per training step: %.2f ms for %.2f GFLOP = %.1f GFLOP/s (%.1f%% of the roof)\n\n",
                step_us / 1e3, step_flops / 1e9, step_flops / step_us / 1e3,
                100 * step_flops / step_us / 1e3 / roof[i]);
  }
  return 0;
}
