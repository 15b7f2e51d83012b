#!/usr/bin/env python3
"""`tessera generate` end to end: train the tiny GPT a few steps into a checkpoint, then check
that generation continues the prompt, is deterministic for a seed and differs across seeds,
that --greedy is temperature 0 and matches the no-cache baseline (also on a checkpoint
pruned by `tessera prune --structured`), that it prints a timing line on stderr, and that a
prompt character outside the vocabulary gives one error line and exit code 1. Standard
library only."""
import argparse
import os
import subprocess
import sys
import tempfile


def run(cmd, expect_rc=0, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != expect_rc:
        sys.exit(f"FAILED (exit {r.returncode}, expected {expect_rc}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def check(cond, message):
    if not cond:
        sys.exit("FAILED: " + message)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")
        run([args.tessera, "train", args.config, "--set", "train.max_steps=6", "--set", f"checkpoint.dir={ckpt}",
             "--set", "checkpoint.interval=6", "--set", "train.threads=1", "--set", "log.interval=6"], timeout=300)
        gen = [args.tessera, "generate", ckpt, "--prompt", "ROMEO:", "--max-tokens", "40"]
        a = run(gen + ["--seed", "1", "--top-k", "10"])
        check(a.stdout.startswith("ROMEO:") and len(a.stdout) == len("ROMEO:") + 40 + 1,
              f"stdout is not the prompt plus 40 characters and a newline: {a.stdout!r}")
        check("tokens/s" in a.stderr and "prefill 6 tokens" in a.stderr, f"no timing line on stderr: {a.stderr!r}")
        check(run(gen + ["--seed", "1", "--top-k", "10"]).stdout == a.stdout, "the same seed gave different text")
        check(run(gen + ["--seed", "2", "--top-k", "10"]).stdout != a.stdout, "seeds 1 and 2 gave the same text")
        greedy = run(gen + ["--greedy"]).stdout
        check(run(gen + ["--temperature", "0", "--seed", "5"]).stdout == greedy, "--greedy is not temperature 0")
        # Within the context of 16 the KV cache must not change the text (past it, the cached
        # and the sliding-window baseline condition on different windows by design).
        short = [args.tessera, "generate", ckpt, "--prompt", "ROMEO:", "--max-tokens", "10", "--greedy"]
        check(run(short + ["--no-cache"]).stdout == run(short).stdout, "the KV cache changed the greedy text")
        # A structurally pruned checkpoint (2 of 4 heads: attention width 16, hidden 32) loads too.
        pruned = os.path.join(tmp, "pruned")
        run([args.tessera, "prune", ckpt, "-o", pruned, "--structured", "neurons=0.25,heads=0.5"])
        short_pruned = [args.tessera, "generate", pruned, "--prompt", "ROMEO:", "--max-tokens", "10", "--greedy"]
        pruned_text = run(short_pruned).stdout
        check(pruned_text.startswith("ROMEO:") and len(pruned_text) == len("ROMEO:") + 10 + 1,
              f"the pruned checkpoint gave {pruned_text!r}")
        check(run(short_pruned + ["--no-cache"]).stdout == pruned_text, "the KV cache changed the pruned model's text")
        bad = run([args.tessera, "generate", ckpt, "--prompt", "ROMEO~"], expect_rc=1)
        lines = bad.stderr.strip().splitlines()
        check(len(lines) == 1 and "not in the vocabulary" in lines[0] and bad.stdout == "",
              f"a prompt outside the vocabulary gave: {bad.stderr!r}")
        run([args.tessera, "generate", "--help"])
    print("tessera generate: ok")


if __name__ == "__main__":
    main()
