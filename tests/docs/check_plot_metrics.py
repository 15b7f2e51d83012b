#!/usr/bin/env python3
"""Runs scripts/plot_metrics.py on the two metrics files check_train_output.py leaves (one rank,
tp 2) and checks the PNG: a real image of the expected size with more than a few colours, that
--target draws into it, and clear one-line errors for a malformed metrics file and for a
--label count that does not match.

    python3 tests/docs/check_plot_metrics.py RUNS_DIR
"""
import pathlib
import subprocess
import sys

import matplotlib.image
import numpy

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLOT = ROOT / "scripts" / "plot_metrics.py"


def plot(*args):
    return subprocess.run([sys.executable, str(PLOT), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


def png_pixels(path):
    """(width, height, distinct colours) of a PNG, read back with matplotlib."""
    if path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"FAILED: {path} is not a PNG")
    pixels = matplotlib.image.imread(path)
    colours = numpy.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)
    return pixels.shape[1], pixels.shape[0], len(colours)


def main():
    runs = pathlib.Path(sys.argv[1])
    out = runs / "metrics.png"
    out.unlink(missing_ok=True)
    r = plot(runs / "one_rank.jsonl", runs / "tp2.jsonl", "--label", "1 rank", "--label", "tp 2", "-o", out)
    if r.returncode != 0:
        sys.exit(f"FAILED: plot_metrics.py exited with {r.returncode}:\n{r.stdout}")
    if not out.exists() or out.stat().st_size < 20000:
        sys.exit(f"FAILED: {out} missing or too small to hold three plotted series ({out.stat().st_size if out.exists() else 0} bytes)")
    width, height, colours = png_pixels(out)
    if (width, height) != (880, 770):
        sys.exit(f"FAILED: {out} is {width}x{height}, expected 880x770 (8 x 7 inches at 110 dpi)")
    if colours < 8:
        sys.exit(f"FAILED: {out} has only {colours} distinct colours: nothing plotted")

    # --target adds a line to the loss plot (what the docs' loss curve is drawn with).
    target = runs / "target.png"
    r = plot(runs / "one_rank.jsonl", runs / "tp2.jsonl", "--label", "1 rank", "--label", "tp 2", "--target", "3.5",
             "-o", target)
    if r.returncode != 0:
        sys.exit(f"FAILED: plot_metrics.py --target exited with {r.returncode}:\n{r.stdout}")
    if numpy.array_equal(matplotlib.image.imread(out), matplotlib.image.imread(target)):
        sys.exit(f"FAILED: {target} with --target 3.5 is the same image as {out} without it")

    bad = runs / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": \n')
    r = plot(bad, "-o", runs / "bad.png")
    if r.returncode == 0 or f"{bad}:2: not a JSON object" not in r.stdout:
        sys.exit(f"FAILED: a malformed line must be named by file and line:\n{r.stdout}")
    r = plot(runs / "one_rank.jsonl", runs / "tp2.jsonl", "--label", "only one", "-o", runs / "bad.png")
    if r.returncode == 0 or "1 --label for 2 files" not in r.stdout:
        sys.exit(f"FAILED: a --label count that does not match the files must be refused:\n{r.stdout}")
    print(f"check_plot_metrics: {out} ({out.stat().st_size} bytes, {width}x{height}) and the errors as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
