#!/usr/bin/env python3
"""Training throughput of Tessera's llama against Hugging Face transformers' LlamaForCausalLM
in PyTorch (eager, CPU, SDPA attention, AdamW(fused=True)) on the same shape, batch and
thread count, in fp32 and/or bf16 (PyTorch: torch.autocast("cpu", bfloat16) around forward
and loss, fp32 master weights; Tessera: train.precision=bf16), run back to back on the same
machine.

    python3 bench/bench_llama_vs_pytorch.py --config configs/llama_tiny_shakespeare.yaml \
        --threads 2 --warmup 5 --steps 30 --rounds 3 --precision fp32,bf16 \
        [--set model.hidden_size=256 --set model.seq_length=512 ...]

Each round trains every variant (PyTorch and Tessera in each precision; the order rotates
per round) for W warm-up + N timed steps from a fresh start, so a burst of load on a shared
machine hits all alike. A step is forward, backward, clip to 1.0 and AdamW on one micro batch
(the config's micro_batch_size x seq_length tokens; PyTorch samples random token ids, which
cost the same as text). --set overrides the config for both sides (Tessera gets them as
--set). Tessera's time per step is the step_ms of its JSONL metrics. Prints per-round
tokens/s, medians, min/max, the ratios and the load average seen during the run, as markdown.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shape_of(path, overrides):
    cfg = yaml.safe_load(pathlib.Path(path).read_text())
    for item in overrides:
        key, value = item.split("=", 1)
        section, field = key.split(".", 1)
        if section in ("model", "train") and "." not in field:
            cfg[section][field] = yaml.safe_load(value)
    m, t = cfg["model"], cfg["train"]
    if m.get("arch") != "llama":
        sys.exit("bench_llama_vs_pytorch.py benchmarks arch: llama configs")
    vocab = m["vocab"]
    if not isinstance(vocab, int):
        vocab = 65 if vocab == "chars" else 256
    return dict(layers=m["num_layers"], hidden=m["hidden_size"], heads=m["num_attention_heads"],
                groups=m.get("num_query_groups") or m["num_attention_heads"], ffn=m["ffn_hidden_size"],
                seq=m["seq_length"], vocab=vocab, micro=t["micro_batch_size"],
                tied=not m.get("untie_embeddings_and_output_weights", False),
                theta=float(m.get("rotary_base", 10000.0)), eps=float(m.get("norm_epsilon", 1e-5)))


def pytorch_step_seconds(s, threads, warmup, steps, bf16):
    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    config = LlamaConfig(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["ffn"],
                         num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                         num_key_value_heads=s["groups"], max_position_embeddings=s["seq"],
                         rms_norm_eps=s["eps"], rope_theta=s["theta"], tie_word_embeddings=s["tied"],
                         attn_implementation="sdpa")
    model = LlamaForCausalLM(config).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    times = []
    for i in range(warmup + steps):
        tokens = torch.randint(0, s["vocab"], (s["micro"], s["seq"] + 1))
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=tokens[:, :-1], labels=None)
            loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, s["vocab"]).float(),
                                                     tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def tessera_step_seconds(args, threads, warmup, steps, precision):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [args.tessera, "train", args.config, "--set", f"train.max_steps={warmup + steps}",
               "--set", f"train.threads={threads}", "--set", "log.interval=1", "--set", f"log.metrics={metrics}",
               "--set", "train.eval_interval=0", "--set", "checkpoint.dir=null", "--set", "checkpoint.interval=0",
               "--set", f"train.precision={precision}"]
        for item in args.set:
            cmd += ["--set", item]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            sys.exit(f"tessera failed:\n{r.stdout}\n{r.stderr}")
        rows = [json.loads(line) for line in open(metrics)]
    return statistics.median(row["step_ms"] for row in rows[warmup:]) / 1000.0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default="configs/llama_tiny_shakespeare.yaml")
    p.add_argument("--tessera", default=str(ROOT / "build" / "launcher" / "tessera"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or fp32,bf16")
    p.add_argument("--set", action="append", default=[], help="model./train. override for both sides")
    args = p.parse_args()
    s = shape_of(args.config, args.set)
    tokens = s["micro"] * s["seq"]
    variants = {}
    for precision in args.precision.split(","):
        bf16 = precision == "bf16"
        name = "PyTorch LlamaForCausalLM (SDPA, fused AdamW" + (", bf16 autocast)" if bf16 else ", fp32)")
        variants[name] = lambda bf16=bf16: pytorch_step_seconds(s, args.threads, args.warmup, args.steps, bf16)
        variants[f"Tessera {precision}"] = lambda precision=precision: tessera_step_seconds(
            args, args.threads, args.warmup, args.steps, precision)
    names = list(variants)
    results, loads = {n: [] for n in names}, []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            results[name].append(tokens / variants[name]())
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1]:.0f}" for n in names) +
              f" tok/s, load {loads[-1]:.1f}", file=sys.stderr)
    print(f"torch {torch.__version__}, {args.threads} threads, {s['layers']} layers x {s['hidden']}, "
          f"{s['heads']} heads / {s['groups']} groups, ffn {s['ffn']}, seq {s['seq']}, vocab {s['vocab']}, "
          f"micro batch {s['micro']}, {'tied' if s['tied'] else 'untied'}; load average {min(loads):.1f}-{max(loads):.1f}")
    print("| | median tok/s | min | max | per round |\n|---|---|---|---|---|")
    for name in names:
        v = results[name]
        print(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} | "
              f"{', '.join(f'{x:.0f}' for x in v)} |")
    for precision in args.precision.split(","):
        ours = results[f"Tessera {precision}"]
        theirs = next(results[n] for n in names if n.startswith("PyTorch") and
                      ("bf16" in n) == (precision == "bf16"))
        per_round = [a / b for a, b in zip(ours, theirs)]
        print(f"\nTessera / PyTorch, {precision}: {statistics.median(ours) / statistics.median(theirs):.2f}x "
              f"(medians; per round {min(per_round):.2f}x-{max(per_round):.2f}x)")


if __name__ == "__main__":
    main()
