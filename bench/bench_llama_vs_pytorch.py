#!/usr/bin/env python3
"""Training throughput of Tessera's llama against Hugging Face transformers' LlamaForCausalLM
in PyTorch (eager, CPU, fp32, SDPA attention, AdamW(fused=True)) on the same shape, batch and
thread count, run back to back on the same machine.

    python3 bench/bench_llama_vs_pytorch.py --config configs/llama_tiny_shakespeare.yaml \
        --threads 2 --warmup 5 --steps 30 --rounds 3

Each round trains PyTorch, then Tessera, each for W warm-up + N timed steps from a fresh
start, so a burst of load on a shared machine hits both alike. A step is forward, backward,
clip to 1.0 and AdamW on one micro batch (the config's micro_batch_size x seq_length tokens;
PyTorch samples random token ids, which cost the same as text). Tessera's time per step is
the step_ms of its JSONL metrics. Prints per-round tokens/s, medians, min/max, the ratio and
the load average seen during the run, as markdown.
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


def shape_of(path):
    cfg = yaml.safe_load(pathlib.Path(path).read_text())
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


def pytorch_step_seconds(s, threads, warmup, steps):
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
        out = model(input_ids=tokens[:, :-1], labels=None)
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, s["vocab"]), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def tessera_step_seconds(args, threads, warmup, steps):
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        cmd = [args.tessera, "train", args.config, "--set", f"train.max_steps={warmup + steps}",
               "--set", f"train.threads={threads}", "--set", "log.interval=1", "--set", f"log.metrics={metrics}",
               "--set", "train.eval_interval=0", "--set", "checkpoint.dir=null", "--set", "checkpoint.interval=0"]
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
    args = p.parse_args()
    s = shape_of(args.config)
    tokens = s["micro"] * s["seq"]
    pt, ts, loads = [], [], []
    for r in range(args.rounds):
        pt.append(tokens / pytorch_step_seconds(s, args.threads, args.warmup, args.steps))
        ts.append(tokens / tessera_step_seconds(args, args.threads, args.warmup, args.steps))
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}: PyTorch {pt[-1]:.0f} tok/s, Tessera {ts[-1]:.0f} tok/s, load {loads[-1]:.1f}",
              file=sys.stderr)
    print(f"torch {torch.__version__}, {args.threads} threads, {s['layers']} layers x {s['hidden']}, "
          f"{s['heads']} heads / {s['groups']} groups, ffn {s['ffn']}, seq {s['seq']}, vocab {s['vocab']}, "
          f"micro batch {s['micro']}, {'tied' if s['tied'] else 'untied'}; load average {min(loads):.1f}-{max(loads):.1f}")
    print("| | median tok/s | min | max |\n|---|---|---|---|")
    for name, v in (("PyTorch LlamaForCausalLM (SDPA, fused AdamW)", pt), ("Tessera", ts)):
        print(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} |")
    print(f"\nTessera / PyTorch: {statistics.median(ts) / statistics.median(pt):.2f}x (medians)")


if __name__ == "__main__":
    main()
