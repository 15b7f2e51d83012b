#!/usr/bin/env python3
"""A missing NCCL peer ends the job with one line: runs `mpirun -np 2 CHECK timeout` (rank 1 never
joins an all_reduce) and requires exit != 0, within the time a 1 s timeout allows, and exactly one
line `tessera: error on rank 0: timeout after 1 s in all_reduce on group 'world' ... at step 7 ...`
naming the NCCL watchdog. Usage: check_nccl_timeout.py MPIRUN_ARGS... -- CHECK_BINARY"""
import re
import subprocess
import sys
import time


def main():
    sep = sys.argv.index("--")
    cmd = sys.argv[1:sep] + sys.argv[sep + 1:] + ["timeout"]
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("tessera: error")]
    problems = []
    if r.returncode == 0:
        problems.append("exit code 0")
    if len(lines) != 1:
        problems.append(f"expected one error line, got {lines}")
    elif not re.fullmatch(r"tessera: error on rank 0: timeout after 1 s in all_reduce on group 'world' "
                          r"\(NCCL rank 0 of 2, world rank 0\) at step 7: all_reduce did not finish on cuda:0; "
                          r"the NCCL watchdog aborted the communicator", lines[0]):
        problems.append(f"unexpected line: {lines[0]}")
    if elapsed > 60:
        problems.append(f"took {elapsed:.0f} s for a 1 s timeout")
    if problems:
        print("FAILED:", "; ".join(problems))
        print(r.stdout, r.stderr)
        return 1
    print(f"PASS: {lines[0]} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
