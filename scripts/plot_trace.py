#!/usr/bin/env python3
"""Renders one step of a Tessera Chrome trace (log.trace) as a PNG timeline: one row per
rank, forward blocks labelled with their microbatch, backward blocks darker, communication
waits hatched. Usage: plot_trace.py TRACE.json [--step N] [-o docs/pipeline_trace.png]"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("trace")
    p.add_argument("--step", type=int, default=None, help="step to draw (default: the last traced)")
    p.add_argument("-o", "--output", default="docs/pipeline_trace.png")
    p.add_argument("--title", default="")
    args = p.parse_args()
    events = [e for e in json.load(open(args.trace))["traceEvents"] if e["ph"] == "X"]
    step = args.step if args.step is not None else max(e["args"]["step"] for e in events)
    events = [e for e in events if e["args"]["step"] == step]
    t0 = min(e["ts"] for e in events)
    ranks = sorted({e["pid"] for e in events})
    colors = {"forward": "#4C72B0", "backward": "#DD8452", "backward+recompute": "#C44E52",
              "optimizer": "#55A868", "grad_sync": "#8172B3"}
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(ranks) + 1.2))
    for e in events:
        kind = e["name"].split()[0]
        y = ranks.index(e["pid"])
        start, width = (e["ts"] - t0) / 1000, e["dur"] / 1000
        if e["cat"] == "comm":
            if kind.startswith("recv"):
                ax.barh(y, width, left=start, height=0.35, color="none", edgecolor="grey", hatch="///", linewidth=0)
            continue
        ax.barh(y, width, left=start, height=0.7, color=colors.get(kind, "grey"), edgecolor="white", linewidth=0.5)
        if "microbatch" in e["args"] and width > 0:
            ax.text(start + width / 2, y, str(e["args"]["microbatch"]), ha="center", va="center", fontsize=7,
                    color="white")
    ax.set_yticks(range(len(ranks)), [f"rank {r}" for r in ranks])
    ax.invert_yaxis()
    ax.set_xlabel("ms since the step started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, colors.keys(), loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=5, fontsize=8)
    ax.set_title(args.title or f"step {step}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
