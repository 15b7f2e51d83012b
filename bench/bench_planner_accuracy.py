#!/usr/bin/env python3
"""Planner accuracy on this machine: for several layouts of two models, the step time and peak
memory per rank that `tessera plan --config-layout` predicts against what `tessera train`
measures (median step_ms of the timed steps; the largest per-rank peak tensor memory from the
run's summary line), and whether the layout the planner ranks first is the fastest measured."""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile

LAYOUTS = [  # (model config, ranks, overrides)
    ("configs/shakespeare_char.yaml", 1, []),
    ("configs/shakespeare_char.yaml", 2, ["parallel.tensor_model_parallel_size=2"]),
    ("configs/shakespeare_char.yaml", 2, ["parallel.pipeline_model_parallel_size=2", "train.micro_batch_size=3"]),
    ("configs/shakespeare_char.yaml", 2, ["parallel.pipeline_model_parallel_size=2", "train.micro_batch_size=3",
                                          "parallel.schedule=gpipe"]),
    ("configs/shakespeare_char.yaml", 2, ["train.micro_batch_size=6"]),
    ("configs/shakespeare_char.yaml", 2, ["train.micro_batch_size=6", "parallel.zero_stage=1"]),
    ("configs/bench/gpt_pipeline.yaml", 1, []),
    ("configs/bench/gpt_pipeline.yaml", 2, ["parallel.tensor_model_parallel_size=2"]),
    ("configs/bench/gpt_pipeline.yaml", 2, ["parallel.pipeline_model_parallel_size=2"]),
    ("configs/bench/gpt_pipeline.yaml", 2, ["parallel.pipeline_model_parallel_size=2", "parallel.recompute=full"]),
]


def sets(overrides):
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def predict(args, config, np, overrides, tmp):
    path = os.path.join(tmp, "plan.json")
    subprocess.run([args.tessera, "plan", config, "--world", str(np), "--config-layout", "--cluster", args.cluster,
                    "--json", path] + sets(overrides + ["train.threads=1"]), check=True, capture_output=True)
    p = json.load(open(path))["predicted"]
    return p["step_time_s"] * 1e3, p["peak_memory_bytes"] / 2**20


def measure(args, config, np, overrides, tmp):
    metrics = os.path.join(tmp, "m.jsonl")
    out = subprocess.run(["mpirun", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", str(np),
                          args.tessera, "train", config, "--set", f"log.metrics={metrics}", "--set", "log.interval=1",
                          "--set", f"train.max_steps={args.steps + 5}", "--set", "train.eval_interval=0",
                          "--set", "train.threads=1", "--set", "checkpoint.interval=0"] + sets(overrides),
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in open(metrics)][5:]
    mem = re.search(r"per rank: (.*)", out)
    peak = max(float(x.split(" MiB")[0]) for x in mem.group(1).split(", ")) if mem else rows[-1]["mem_bytes"] / 2**20
    return statistics.median(r["step_ms"] for r in rows), peak


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", default="build/launcher/tessera")
    p.add_argument("--cluster", default="configs/clusters/cpu_2core.yaml")
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config, np, overrides in LAYOUTS:
            pt, pm = predict(args, config, np, overrides, tmp)
            mt, mm = measure(args, config, np, overrides, tmp)
            rows.append((config, np, overrides, pt, mt, pm, mm))
            print(f"done {os.path.basename(config)} np {np} {' '.join(overrides)}", flush=True)
    print("| model | ranks | layout | predicted ms | measured ms | error | predicted MiB | measured MiB | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config, np, overrides, pt, mt, pm, mm in rows:
        print(f"| {os.path.basename(config)} | {np} | {' '.join(o.split('.')[-1] for o in overrides) or '-'} | "
              f"{pt:.1f} | {mt:.1f} | {(pt - mt) / mt:+.0%} | {pm:.1f} | {mm:.1f} | {(pm - mm) / mm:+.0%} |")
    for model in sorted({r[0] for r in rows}):
        for np in sorted({r[1] for r in rows if r[0] == model}):
            group = [r for r in rows if r[0] == model and r[1] == np]
            if len(group) < 2:
                continue
            best_pred = min(group, key=lambda r: r[3])
            best_meas = min(group, key=lambda r: r[4])
            print(f"{os.path.basename(model)}, {np} ranks: planner's first choice measures {best_pred[4]:.1f} ms, "
                  f"the fastest measured {best_meas[4]:.1f} ms ({best_pred[4] / best_meas[4] - 1:+.0%})")


if __name__ == "__main__":
    main()
