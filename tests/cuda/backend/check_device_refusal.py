#!/usr/bin/env python3
"""Runs a command that must refuse before any work: exit code 1 and stderr exactly one line, the
expected one. Usage: check_device_refusal.py --expect LINE -- COMMAND..."""
import argparse
import subprocess
import sys


def main():
    sep = sys.argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--expect", required=True)
    args = p.parse_args(sys.argv[1:sep])
    r = subprocess.run(sys.argv[sep + 1:], capture_output=True, text=True, timeout=100)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    problems = []
    if r.returncode != 1:
        problems.append(f"exit code {r.returncode}, expected 1")
    if lines != [args.expect]:
        problems.append(f"stderr {lines}, expected [{args.expect!r}]")
    if "step" in r.stdout:
        problems.append("training started before the refusal")
    if problems:
        print("FAILED:", "; ".join(problems))
        print(r.stdout)
        return 1
    print("PASS:", lines[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
