#!/usr/bin/env python3
"""Training throughput of Tessera against PyTorch (eager, CPU, fp32) on the same model,
batch and thread count, run back to back on the same machine.

    python3 bench/bench_train_vs_pytorch.py --config configs/shakespeare_char.yaml \
        --threads 2 --warmup 10 --steps 100 --rounds 5

Each round trains PyTorch, then Tessera (A/B, A/B, ...), each for W warm-up + N timed steps
from a fresh start, so a burst of load on a shared machine hits both sides alike. A step is
sample batch -> forward -> backward -> clip grads to 1.0 -> AdamW with the warm-up/cosine lr;
Tessera's time per step is the `step_ms` of its JSONL metrics (log.interval=1), which times
the same work. Prints per-round numbers, medians, min/max and the ratio Tessera/PyTorch as a
markdown table.

PyTorch is the eager model of tests/reference/nanogpt_model.py with nanoGPT's fused
attention (F.scaled_dot_product_attention, --attention sdpa) or the written-out attention of
the parity fixtures (--attention manual), and AdamW(fused=True) (--adamw fused), the fastest
eager variant measured here. torch.compile is not measured (see docs/benchmarks.md).
"""
import argparse
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("bench_train_vs_pytorch.py needs PyYAML: pip install pyyaml")

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))
from nanogpt_model import TinyGPT, adamw_groups  # noqa: E402


def load_config(path):
    cfg = yaml.safe_load(pathlib.Path(path).read_text())
    m, t, d = cfg["model"], cfg["train"], cfg["data"]
    o = t["optimizer"]
    if m.get("arch", "gpt") != "gpt" or m.get("vocab", "chars") != "chars":
        sys.exit("only arch: gpt with vocab: chars is benchmarked")
    if d.get("format", "text") != "text":
        sys.exit("only data.format: text is benchmarked")
    micro, glob = int(t["micro_batch_size"]), int(t.get("global_batch_size", t["micro_batch_size"]))
    return dict(
        layers=int(m["num_layers"]), heads=int(m["num_attention_heads"]),
        hidden=int(m["hidden_size"]), ffn=int(m.get("ffn_hidden_size", 4 * m["hidden_size"])),
        seq=int(m["seq_length"]), micro=micro, microbatches=glob // micro,
        seed=int(t.get("seed", 1337)), lr=float(o["lr"]), min_lr=float(o.get("min_lr", o["lr"])),
        warmup_steps=int(o.get("warmup_steps", 0)), decay_steps=int(o.get("decay_steps", 0)),
        betas=tuple(float(b) for b in o.get("betas", [0.9, 0.999])),
        eps=float(o.get("eps", 1e-8)), weight_decay=float(o.get("weight_decay", 0.0)),
        grad_clip=float(o.get("grad_clip", 0.0)),
        data=ROOT / d["path"] if not os.path.isabs(d["path"]) else pathlib.Path(d["path"]),
        val_fraction=float(d.get("val_fraction", 0.1)),
    )


def flops_per_token(c, vocab):
    """Training FLOPs per token as Tessera counts them (partitioner/layer_graph.cc): 6 per
    weight of every matmul, plus 12 T C per layer for the attention scores and their
    backward over the full (unmasked) T x T."""
    C, F, L, T = c["hidden"], c["ffn"], c["layers"], c["seq"]
    return 6.0 * (L * (4 * C * C + 2 * C * F) + C * vocab) + 12.0 * L * T * C


def learning_rate(c, step, max_steps):
    """Tessera's schedule (runtime/train/optimizer.cc): linear warm-up, cosine to min_lr."""
    decay = c["decay_steps"] if c["decay_steps"] > 0 else max_steps
    if step < c["warmup_steps"]:
        return c["lr"] * (step + 1) / (c["warmup_steps"] + 1)
    if step >= decay:
        return c["min_lr"]
    ratio = (step - c["warmup_steps"]) / max(1, decay - c["warmup_steps"])
    return c["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c["lr"] - c["min_lr"])


def load_train_tokens(c):
    text = c["data"].read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[ch] for ch in text], dtype=torch.int64)
    return data[: int(len(data) * (1.0 - c["val_fraction"]))], len(chars)


def torch_round(c, data, vocab, warmup, steps, attention, adamw="fused"):
    """Seconds of each of the `steps` timed steps of a fresh PyTorch model."""
    torch.manual_seed(c["seed"])
    sdpa = attention == "sdpa"
    model = TinyGPT(vocab, c["seq"], c["hidden"], c["heads"], c["ffn"], c["layers"], sdpa)
    opt = torch.optim.AdamW(adamw_groups(model, c["weight_decay"]), lr=c["lr"],
                            betas=c["betas"], eps=c["eps"], fused=adamw == "fused")
    gen = torch.Generator().manual_seed(c["seed"])
    offsets = torch.arange(c["seq"])
    B, T, total = c["micro"], c["seq"], warmup + steps
    times = []
    for step in range(total):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for _ in range(c["microbatches"]):
            starts = torch.randint(len(data) - T - 1, (B, 1), generator=gen)
            x, y = data[starts + offsets], data[starts + 1 + offsets]
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1)) / c["microbatches"]
            loss.backward()
        if c["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        for g in opt.param_groups:
            g["lr"] = learning_rate(c, step, total)
        opt.step()
        loss.item()  # what a training loop logs; also a sync point
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def tessera_round(c, args, workdir, r):
    """(seconds of each timed step, the GEMM roof in GFLOP/s Tessera measured at startup)."""
    metrics = pathlib.Path(workdir) / f"metrics_{r}.jsonl"
    total = args.warmup + args.steps
    cmd = [args.tessera, "train", args.config, "--set",
           f"train.max_steps={total}", f"train.threads={args.threads}", "log.interval=1",
           "train.eval_interval=0", f"log.metrics={metrics}", "checkpoint.interval=0",
           f"checkpoint.dir={workdir}/ckpt", "checkpoint.resume=none",
           # max_steps must be >= the warm-up of the lr schedule; both sides use this value.
           f"train.optimizer.warmup_steps={c['warmup_steps']}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"tessera failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    times = [row["step_ms"] / 1e3 for row in rows if row["step"] > args.warmup]
    if len(times) != args.steps:
        sys.exit(f"expected {args.steps} timed steps in {metrics}, found {len(times)}")
    found = re.search(r"MFLOP per token; peak ([\d.]+) GFLOP/s", proc.stdout + proc.stderr)
    return times, float(found.group(1)) if found else math.nan


def cpu_seconds():
    """(CPU seconds busy on the whole machine, CPU seconds of this process and its waited-for
    children): their difference over a run is the load other users put on the machine."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system


class Background:
    """Cores' worth of CPU used by other processes while the `with` block ran."""

    def __enter__(self):
        self.t0, (self.busy0, self.self0) = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        busy, mine = cpu_seconds()
        wall = time.perf_counter() - self.t0
        self.cores = max(0.0, (busy - self.busy0) - (mine - self.self0)) / wall


def wait_for_quiet(max_cores, timeout_s):
    """Sleeps until other processes use under max_cores for 2 s (or timeout_s passed);
    returns the last measured load."""
    deadline = time.monotonic() + timeout_s
    while True:
        with Background() as bg:
            time.sleep(2.0)
        if bg.cores < max_cores or time.monotonic() > deadline:
            return bg.cores


def stats(values):
    return statistics.median(values), min(values), max(values)


def print_table(rounds, title):
    print(f"{title}\n")
    print("| round | PyTorch tok/s | Tessera tok/s | Tessera / PyTorch | PyTorch ms/step "
          "(median) | Tessera ms/step (median) | other load, cores (PyTorch / Tessera) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rounds:
        print(f"| {r['round']} | {r['torch_tok_s']:.0f} | {r['tessera_tok_s']:.0f} | "
              f"{r['ratio']:.2f} | {r['torch_step_ms']:.2f} | {r['tessera_step_ms']:.2f} | "
              f"{r['background_torch']:.2f} / {r['background_tessera']:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/shakespeare_char.yaml")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=100, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=5, help="A/B pairs (PyTorch, then Tessera)")
    p.add_argument("--tessera", default="build-bench/launcher/tessera")
    p.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa",
                   help="PyTorch attention: fused SDPA (nanoGPT) or written out (the fixtures)")
    p.add_argument("--adamw", choices=["fused", "foreach"], default="fused",
                   help="PyTorch's AdamW implementation: fused (its fastest on CPU here, by "
                   "3-6%%) or foreach (the default when fused is not asked for)")
    p.add_argument("--max-background", type=float, default=0.3, metavar="CORES",
                   help="wait before each round until other processes use fewer cores than "
                   "this; a round during which they used more is noisy")
    p.add_argument("--quiet-timeout", type=float, default=60, metavar="S",
                   help="wait at most this long for a quiet machine before a round")
    p.add_argument("--max-attempts", type=int, default=0, metavar="K",
                   help="repeat noisy rounds, up to K rounds in all (default: 3 x rounds); "
                   "medians are over the quiet rounds, or over all when none was quiet")
    p.add_argument("--json", help="also write the raw per-round numbers here")
    args = p.parse_args()
    args.config = str(pathlib.Path(args.config).resolve())
    args.tessera = str(pathlib.Path(args.tessera).resolve())
    max_attempts = args.max_attempts or 3 * args.rounds

    c = load_config(args.config)
    c["warmup_steps"] = min(c["warmup_steps"], args.warmup + args.steps)
    torch.set_num_threads(args.threads)
    data, vocab = load_train_tokens(c)
    tokens_per_step = c["micro"] * c["microbatches"] * c["seq"]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="tessera_bench_") as workdir:
        while len(rounds) < max_attempts and sum(not r["noisy"] for r in rounds) < args.rounds:
            n = len(rounds) + 1
            idle = wait_for_quiet(args.max_background, args.quiet_timeout)
            with Background() as bg_torch:
                pt = torch_round(c, data, vocab, args.warmup, args.steps, args.attention,
                                 args.adamw)
            with Background() as bg_tessera:
                ts, peak = tessera_round(c, args, workdir, n)
            row = dict(round=n, time=time.strftime("%H:%M:%S"),
                       torch_tok_s=tokens_per_step * len(pt) / sum(pt),
                       tessera_tok_s=tokens_per_step * len(ts) / sum(ts),
                       torch_step_ms=1e3 * statistics.median(pt),
                       tessera_step_ms=1e3 * statistics.median(ts),
                       tessera_peak_gflops=peak,
                       background_before=idle, background_torch=bg_torch.cores,
                       background_tessera=bg_tessera.cores,
                       noisy=max(bg_torch.cores, bg_tessera.cores) > args.max_background)
            row["ratio"] = row["tessera_tok_s"] / row["torch_tok_s"]
            rounds.append(row)
            print(f"round {n}: PyTorch {row['torch_tok_s']:.0f} tok/s, Tessera "
                  f"{row['tessera_tok_s']:.0f} tok/s, ratio {row['ratio']:.2f} (other load "
                  f"{bg_torch.cores:.2f} / {bg_tessera.cores:.2f} cores"
                  f"{', noisy' if row['noisy'] else ''})", file=sys.stderr, flush=True)

    quiet = [r for r in rounds if not r["noisy"]]
    used = quiet or rounds
    pt_med, pt_min, pt_max = stats([r["torch_tok_s"] for r in used])
    ts_med, ts_min, ts_max = stats([r["tessera_tok_s"] for r in used])
    ra_med, ra_min, ra_max = stats([r["ratio"] for r in used])
    print(f"\n{os.path.relpath(args.config, ROOT)}: {args.threads} threads, batch "
          f"{c['micro']}x{c['microbatches']} x seq {c['seq']} = {tokens_per_step} tokens/step, "
          f"{args.warmup} warm-up + {args.steps} timed steps per run; torch "
          f"{torch.__version__} eager, attention={args.attention}, AdamW {args.adamw}; started "
          f"{started}, "
          f"{len(quiet)} of {len(rounds)} rounds quiet (other load <= {args.max_background} "
          f"cores)\n")
    if not quiet:
        print("**WARNING: no round ran on a quiet machine; the numbers below are all rounds, "
              "each disturbed by other processes.**\n")
    print_table(used, "Rounds in the medians:")
    print(f"| **median** | **{pt_med:.0f}** | **{ts_med:.0f}** | **{ra_med:.2f}** | | | |")
    print(f"| min - max | {pt_min:.0f} - {pt_max:.0f} | {ts_min:.0f} - {ts_max:.0f} | "
          f"{ra_min:.2f} - {ra_max:.2f} | | | |")
    if quiet and len(quiet) < len(rounds):
        print()
        print_table([r for r in rounds if r["noisy"]], "Noisy rounds, left out:")
    mflop = flops_per_token(c, vocab) / 1e6
    peak = statistics.median(r["tessera_peak_gflops"] for r in used)
    print(f"\nmodel {mflop:.3f} MFLOP/token: Tessera {ts_med * mflop / 1e3:.1f} GFLOP/s, "
          f"PyTorch {pt_med * mflop / 1e3:.1f} GFLOP/s; Tessera's startup GEMM roof (512^3 "
          f"sgemm, median of rounds) {peak:.1f} GFLOP/s -> MFU Tessera "
          f"{ts_med * mflop / 1e3 / peak:.1%}, PyTorch {pt_med * mflop / 1e3 / peak:.1%} "
          f"(bench_gemm_roof measures the roof more carefully)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            dict(config=os.path.relpath(args.config, ROOT), threads=args.threads,
                 warmup=args.warmup, steps=args.steps,
                 attention=args.attention, adamw=args.adamw, torch=torch.__version__,
                 started=started,
                 max_background=args.max_background, rounds=rounds), indent=1) + "\n")


if __name__ == "__main__":
    main()
