#!/usr/bin/env python3
"""Runs a command that must refuse before any work: exit code 1 and exactly one `tessera` line on
stderr, the expected one, for the whole job. A single process prints nothing else; under mpirun
(the command starts with it) mpirun's own report of the failed job may follow, but no MPI_ABORT:
the ranks agree and exit. Usage: check_device_refusal.py --expect LINE -- COMMAND..."""
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
    ours = [l for l in lines if l.startswith("tessera")]
    under_mpirun = "mpi" in sys.argv[sep + 1]
    problems = []
    if r.returncode != 1:
        problems.append(f"exit code {r.returncode}, expected 1")
    if ours != [args.expect] or (not under_mpirun and len(lines) != 1):
        problems.append(f"stderr {lines}, expected one line {args.expect!r}")
    if "MPI_ABORT" in r.stderr:
        problems.append("the job was aborted instead of every rank exiting")
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
