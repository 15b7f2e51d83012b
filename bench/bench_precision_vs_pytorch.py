#!/usr/bin/env python3
"""Training tokens/s of Tessera in fp32 (Eigen and oneDNN GEMMs) and bf16 against PyTorch on the
same GPT shape, threads and batch: PyTorch eager fp32, torch.compile fp32, eager with
torch.autocast(bfloat16) and torch.compile with autocast — the baselines a CPU user would pick.

    python3 bench/bench_precision_vs_pytorch.py --shape 4,512,8,256,8 --threads 2 --steps 10 --rounds 3

--shape is layers,hidden,heads,seq,batch (ffn = 4 x hidden, vocab 65 as Shakespeare's chars).
Each round runs every variant once, one after another, in an order rotated per round, so load
from other users of a shared machine hits all of them. A step is forward -> backward -> clip
to 1.0 -> AdamW (fused) for PyTorch; Tessera's step_ms from its JSONL metrics times the same.
Prints medians, min and max per variant and the ratios the targets are stated in, plus the
oneDNN GEMM roofs (bench_gemm_backends) when its binary is given.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))
from nanogpt_model import TinyGPT, adamw_groups  # noqa: E402

VOCAB = 65


def torch_seconds(shape, threads, warmup, steps, bf16, compiled):
    L, C, H, T, B = shape
    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    model = TinyGPT(VOCAB, T, C, H, 4 * C, L, True)
    opt = torch.optim.AdamW(adamw_groups(model, 0.1), lr=1e-3, fused=True)
    fwd = torch.compile(model) if compiled else model
    gen = torch.Generator().manual_seed(1)
    times = []
    for step in range(warmup + steps):
        x = torch.randint(VOCAB, (B, T), generator=gen)
        y = torch.randint(VOCAB, (B, T), generator=gen)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = fwd(x)
            loss = F.cross_entropy(logits.view(-1, VOCAB).float(), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def tessera_seconds(args, shape, precision, gemm, workdir):
    L, C, H, T, B = shape
    metrics = pathlib.Path(workdir) / f"m_{precision}_{gemm}.jsonl"
    sets = [f"model.num_layers={L}", f"model.hidden_size={C}", f"model.num_attention_heads={H}",
            f"model.ffn_hidden_size={4 * C}", f"model.seq_length={T}", f"train.micro_batch_size={B}",
            f"train.global_batch_size={B}", f"train.max_steps={args.warmup + args.steps}",
            f"train.threads={args.threads}", f"train.precision={precision}", f"train.gemm={gemm}",
            "log.interval=1", "train.eval_interval=0", f"log.metrics={metrics}", "checkpoint.dir=",
            "checkpoint.interval=0", "train.optimizer.warmup_steps=0"]
    cmd = [args.tessera, "train", "configs/shakespeare_char.yaml"] + [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"tessera failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [r["step_ms"] / 1e3 for r in rows if r["step"] > args.warmup]


VARIANTS = {
    "pytorch fp32": lambda a, s, w: torch_seconds(s, a.threads, a.warmup, a.steps, False, False),
    "pytorch compile fp32": lambda a, s, w: torch_seconds(s, a.threads, a.warmup, a.steps, False, True),
    "pytorch bf16 autocast": lambda a, s, w: torch_seconds(s, a.threads, a.warmup, a.steps, True, False),
    "pytorch compile bf16 autocast": lambda a, s, w: torch_seconds(s, a.threads, a.warmup, a.steps, True, True),
    "tessera fp32 eigen": lambda a, s, w: tessera_seconds(a, s, "fp32", "eigen", w),
    "tessera fp32 onednn": lambda a, s, w: tessera_seconds(a, s, "fp32", "onednn", w),
    "tessera bf16": lambda a, s, w: tessera_seconds(a, s, "bf16", "onednn", w),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="4,512,8,256,8", help="layers,hidden,heads,seq,batch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tessera", default="build/launcher/tessera")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--json", help="write the per-round medians here")
    args = p.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    tokens = shape[3] * shape[4]
    names = args.variants.split(",")
    results = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in names[r % len(names):] + names[: r % len(names)]:
                times = VARIANTS[n](args, shape, tmp)
                results[n].append(tokens / statistics.median(times))
                print(f"round {r + 1}: {n}: {results[n][-1]:.0f} tok/s", file=sys.stderr)
    print(f"shape (layers, hidden, heads, seq, batch) = {shape}, {args.threads} threads, "
          f"{args.rounds} rounds x {args.steps} timed steps\n")
    print("| variant | tok/s median | min | max |\n|---|---:|---:|---:|")
    med = {n: statistics.median(v) for n, v in results.items()}
    for n, v in results.items():
        print(f"| {n} | {med[n]:.0f} | {min(v):.0f} | {max(v):.0f} |")
    ratios = [("tessera bf16", "pytorch bf16 autocast"), ("tessera bf16", "pytorch compile bf16 autocast"),
              ("tessera fp32 onednn", "tessera fp32 eigen"), ("tessera fp32 onednn", "pytorch fp32"),
              ("tessera bf16", "tessera fp32 eigen")]
    print()
    for a, b in ratios:
        if a in med and b in med:
            print(f"- {a} / {b}: {med[a] / med[b]:.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"shape": shape, "threads": args.threads,
                                                       "tok_s": results}, indent=1))


if __name__ == "__main__":
    main()
