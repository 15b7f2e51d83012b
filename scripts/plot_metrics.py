#!/usr/bin/env python3
"""Plots Tessera metrics (log.metrics JSONL files) against step into one PNG: training loss,
validation loss and tokens per second, one colour per file, to compare runs and layouts.

    python3 scripts/plot_metrics.py runs/a/metrics.jsonl runs/b/metrics.jsonl \\
        [--label "1 rank" --label "tp 2 x pp 2"] [-o metrics.png] [--title TEXT] [--target 1.95]

A file's label is its --label (given once per file, in order) or else its file name. Each
file's last validation loss is written next to its point; --target draws a loss to reach.
"""
import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    """The JSON objects of one metrics file; exits with file:line for a malformed line."""
    rows = []
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError as e:
        sys.exit(f"plot_metrics: {path}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"plot_metrics: {path}:{n}: not a JSON object ({e.msg})")
        if not isinstance(row, dict) or "step" not in row:
            sys.exit(f"plot_metrics: {path}:{n}: a metrics line needs a \"step\"")
        rows.append(row)
    if not rows:
        sys.exit(f"plot_metrics: {path}: no metrics lines")
    return rows


def series(rows, key):
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("metrics", nargs="+", help="JSONL files written by log.metrics")
    p.add_argument("--label", action="append", default=[], help="legend label, once per file in order")
    p.add_argument("-o", "--output", default="metrics.png", help="PNG to write (default metrics.png)")
    p.add_argument("--title", default="Tessera training metrics")
    p.add_argument("--target", type=float, help="draw a dotted line at this loss")
    args = p.parse_args()
    if args.label and len(args.label) != len(args.metrics):
        sys.exit(f"plot_metrics: {len(args.label)} --label for {len(args.metrics)} files: give one per file or none")

    fig, (loss_ax, speed_ax) = plt.subplots(2, 1, figsize=(8, 7), dpi=110, sharex=True,
                                            gridspec_kw={"height_ratios": [3, 2]})
    for i, path in enumerate(args.metrics):
        rows = read_metrics(path)
        label = args.label[i] if args.label else pathlib.Path(path).name
        color = f"C{i}"
        steps, loss = series(rows, "loss")
        loss_ax.plot(steps, loss, color=color, lw=1.2, label=f"{label}: train")
        steps, val = series(rows, "val_loss")
        if steps:
            loss_ax.plot(steps, val, color=color, lw=1.2, ls="--", marker="o", ms=4, label=f"{label}: validation")
            loss_ax.annotate(f"{val[-1]:.3f}", (steps[-1], val[-1]), textcoords="offset points", xytext=(-10, -14),
                             color=color, fontsize=8)
        steps, speed = series(rows, "tokens_per_s")
        speed_ax.plot(steps, speed, color=color, lw=1.2, label=label)
    if args.target is not None:
        loss_ax.axhline(args.target, color="gray", ls=":", lw=1, label=f"target {args.target:g}")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title(args.title)
    loss_ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=8)
    speed_ax.set_ylabel("tokens / s")
    speed_ax.set_xlabel("step")
    speed_ax.set_ylim(bottom=0)
    speed_ax.grid(alpha=0.3)
    speed_ax.legend(fontsize=8)
    fig.tight_layout()
    out = pathlib.Path(args.output)
    if out.parent != pathlib.Path("."):
        out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"plot_metrics: wrote {out} ({len(args.metrics)} run{'s' if len(args.metrics) > 1 else ''})")


if __name__ == "__main__":
    main()
