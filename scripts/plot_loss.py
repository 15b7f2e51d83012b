#!/usr/bin/env python3
"""Plots train and validation loss against step from one or more Tessera JSONL metrics files.

    python3 scripts/plot_loss.py runs/shakespeare_char/metrics.jsonl [more.jsonl ...] \
        [--labels a b] [--out docs/loss_curve.png] [--target 1.95]

Train loss is drawn as a line per file, validation loss (the lines that carry `val_loss`)
as markers on a line of the same colour.
"""
import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    rows = []
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            sys.exit(f"{path}:{n}: not a JSON object ({e.msg})")
    if not rows:
        sys.exit(f"{path}: no metrics lines")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("metrics", nargs="+", help="JSONL files written by log.metrics")
    p.add_argument("--labels", nargs="*", help="legend label per file (default: the file name)")
    p.add_argument("--out", default="docs/loss_curve.png")
    p.add_argument("--title", default="Tessera: training and validation loss")
    p.add_argument("--target", type=float, help="draw a horizontal line at this loss")
    args = p.parse_args()
    if args.labels and len(args.labels) != len(args.metrics):
        sys.exit(f"--labels: {len(args.labels)} labels for {len(args.metrics)} files")

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, path in enumerate(args.metrics):
        rows = read_metrics(path)
        label = args.labels[i] if args.labels else pathlib.Path(path).stem
        color = f"C{i}"
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color=color, alpha=0.6,
                linewidth=1, label=f"{label} train")
        val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val), color=color, marker="o", linewidth=2, label=f"{label} val")
            step, loss = val[-1]
            ax.annotate(f"{loss:.3f}", (step, loss), textcoords="offset points", xytext=(-10, -16),
                        color=color)
    if args.target is not None:
        ax.axhline(args.target, color="gray", linestyle="--", linewidth=1,
                   label=f"target {args.target:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/char)")
    ax.set_title(args.title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
