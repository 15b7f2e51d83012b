#!/usr/bin/env python3
"""Where a Tessera training step spends its time: samples `tessera train` with Linux perf
(software cpu-clock events, so it works in VMs without hardware counters), walks each
sample's frame-pointer call stack and charges it to the kernel (tessera::kernels::cpu::*)
it ran in, split by the layer that called it (forward / backward).

Needs a build with frame pointers, e.g.

    cmake -S . -B build-prof -DTESSERA_CUDA=OFF -DTESSERA_BUILD_TESTS=OFF \
        -DCMAKE_CXX_FLAGS="-g -fno-omit-frame-pointer"
    cmake --build build-prof -j2 --target tessera
    python3 bench/perf_breakdown.py --tessera build-prof/launcher/tessera --threads 1 --steps 200

Shares are of CPU time (all threads), not of wall time. libgomp has no frame pointers, so a
stack that ends in libgomp cannot be followed back to the kernel whose parallel region it is
in: every sample of a thread spinning or sleeping in OpenMP (at a region's closing barrier,
or as a worker idling between regions while the main thread runs serial code) counts as
`libgomp (OpenMP barrier / idle wait)`. The "in the OS" column is the part of a kernel's
samples spent in the Linux kernel on its behalf, mostly page faults on first touch of
freshly allocated tensors.
"""
import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL = re.compile(r"tessera::kernels::cpu::(?!detail::|\(anonymous namespace\))(\w+)")
CALLER = re.compile(r"tessera::(\w+)::(forward|backward)\b")
OUTSIDE = "(outside the training loop: startup, MPI, OS)"
PHASES = [("forward", "Model::forward"), ("backward", "Model::backward"),
          ("optimizer", "AdamW::step"), ("grad clip", "clip_grad_norm"),
          ("setup", "Trainer::Trainer")]


def samples(perf_data):
    """Yields each sample's stack, leaf first, as a list of symbol names."""
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", "ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    stack = []
    for line in out.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        parts = line.strip().split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "[unknown]")
    if stack:
        yield stack


def classify(stack):
    """(kernel, caller, phase) of one sample. The kernel is the outermost kernel frame, so the
    gemm inside linear_backward counts as linear_backward; on OpenMP worker threads, whose
    stacks start in the outlined parallel region, a gemm is counted the same way, since in
    the training loop only linear_backward calls gemm (the startup roof measurement does too,
    but it is ~10 ms of a run)."""
    text = "\n".join(stack)
    kernel = None
    for frame in reversed(stack):
        found = KERNEL.findall(frame)
        if found:
            kernel = "linear_backward" if found[0] == "gemm" else found[0]
            break
    if kernel is None:
        if "libgomp" in text or "gomp_" in text:
            kernel = "libgomp (OpenMP barrier / idle wait)"
        elif "Trainer::train_step" in text:
            kernel = "(other code in train_step)"
        else:
            kernel = OUTSIDE
    caller = next((f"{m.group(1)}.{m.group(2)}" for f in stack for m in [CALLER.search(f)] if m), "")
    phase = next((name for name, sym in PHASES if sym in text), None)
    if kernel.startswith("(outside"):
        phase = "setup"
    elif phase is None:  # a worker thread or a frame without a frame pointer: go by the name
        phase = {"_forward": "forward", "_backward": "backward", "adamw_update": "optimizer",
                 "sum_squares": "grad clip", "scale": "grad clip"}.get(
                     next((k for k in ("_forward", "_backward") if kernel.endswith(k)), kernel),
                     "other")
    return kernel, caller, phase, "[kernel.kallsyms]" in stack[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tessera", default="build-prof/launcher/tessera")
    p.add_argument("--config", default="configs/shakespeare_char.yaml")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--freq", type=int, default=4000, help="samples per second per thread")
    p.add_argument("--perf-data", help="analyse this perf.data instead of recording")
    p.add_argument("--save", help="keep the recorded perf.data here")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="tessera_perf_") as tmp:
        data = args.perf_data
        if data is None:
            data = f"{tmp}/perf.data"
            cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq), "--call-graph",
                   "fp", "-o", data, "--", str(pathlib.Path(args.tessera).resolve()), "train",
                   args.config, "--set", f"train.max_steps={args.steps}",
                   f"train.threads={args.threads}", f"log.interval={args.steps}",
                   "train.eval_interval=0", f"log.metrics={tmp}/m.jsonl", "checkpoint.interval=0",
                   f"checkpoint.dir={tmp}/ckpt", "checkpoint.resume=none",
                   f"train.optimizer.warmup_steps={min(100, args.steps)}"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"perf/tessera failed:\n{proc.stdout}{proc.stderr}")
            print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
            if args.save:
                shutil.copyfile(data, args.save)
        by_kernel, by_kernel_caller, by_phase, in_os = (collections.Counter() for _ in range(4))
        total = 0
        for stack in samples(data):
            kernel, caller, phase, os_mode = classify(stack)
            in_os[kernel] += os_mode
            total += 1
            by_kernel[kernel] += 1
            by_kernel_caller[(kernel, caller)] += 1
            by_phase[phase] += 1

    in_loop = total - by_kernel[OUTSIDE]
    print(f"\n{total} samples, {in_loop} in the training loop ({args.threads} threads)\n")
    print("| phase | share of loop CPU time |\n|---|---:|")
    for phase, n in by_phase.most_common():
        if phase != "setup":
            print(f"| {phase} | {100 * n / in_loop:.1f}% |")
    print(f"\n{100 * (sum(in_os.values()) - in_os[OUTSIDE]) / in_loop:.1f}% of the loop's CPU "
          "time is in the OS (Linux kernel)")
    print("\n| kernel | share of loop CPU time | of which in the OS | biggest callers |\n"
          "|---|---:|---:|---|")
    for kernel, n in by_kernel.most_common(args.top):
        if kernel.startswith("(outside"):
            continue
        # Callers are only known where the stack unwinds past the kernel (not on OpenMP
        # worker threads); ones under 0.1% are left out.
        callers = sorted(((c, m) for (k, c), m in by_kernel_caller.items()
                          if k == kernel and c and m >= 0.001 * in_loop), key=lambda cm: -cm[1])[:3]
        who = ", ".join(f"{c} {100 * m / in_loop:.1f}%" for c, m in callers)
        print(f"| {kernel} | {100 * n / in_loop:.1f}% | {100 * in_os[kernel] / in_loop:.1f}% "
              f"| {who} |")


if __name__ == "__main__":
    main()
