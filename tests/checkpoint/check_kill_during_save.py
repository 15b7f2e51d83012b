#!/usr/bin/env python3
"""Crash safety of checkpoint saves: a 2-rank job (tessera_mpi_checkpoint_tests churn) saves
checkpoint after checkpoint (keep 2) and is killed with SIGKILL, every process of its session,
ROUNDS times. Each kill lands at a random instant after the job has completed a save of its
own, so the job is writing files, renaming directories and replacing `latest` around it.

After every kill, `verify` must find the newest complete checkpoint and load it with exactly
its own step's values (a checkpoint mixing files of two saves fails), and that step must not be
older than the newest `latest` seen before the kill (a completed save is never lost). Every
round must pass: `docs/failures.md` promises this every time.

Usage: check_kill_during_save.py EXE MPIRUN DIR ROUNDS [mpirun flags...]"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

exe, mpirun, out, rounds, flags = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
shutil.rmtree(out, ignore_errors=True)
rng = random.Random(20240520)


def kill_session(sid):
    # mpirun puts each rank in its own process group, so kill by session instead.
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def latest_step():
    """The step `latest` names, or 0 (no complete save yet, or `latest` being replaced)."""
    try:
        with open(os.path.join(out, "latest")) as f:
            return int(f.read().strip().removeprefix("step_"))
    except (OSError, ValueError):
        return 0


def wait_for_save_after(step, job):
    """Waits until the job has completed a save newer than `step`; False if it died first."""
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None:
        if latest_step() > step:
            return True
        time.sleep(0.01)
    return False


steps = []
for i in range(rounds):
    before = latest_step()
    job = subprocess.Popen([mpirun, "-np", "2", *flags, exe, "churn", out], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    if not wait_for_save_after(before, job):
        kill_session(job.pid)
        job.wait()
        sys.exit(f"kill {i + 1}: the job saved nothing after step {before} within 120 s:\n{job.stderr.read()}")
    time.sleep(rng.uniform(0.0, 1.0))
    seen = latest_step()  # read just before the kill: a save this new has completed
    kill_session(job.pid)
    job.wait()
    time.sleep(0.2)
    kill_session(job.pid)  # anything forked in between
    check = subprocess.run([exe, "verify", out], capture_output=True, text=True, timeout=120)
    lines = check.stdout.strip().splitlines() or ["(no output)"]
    print(f"kill {i + 1} (latest was step_{seen}): " + "\n    ".join(l for l in lines if "cases passed" not in l),
          flush=True)
    if check.returncode != 0 or not lines[0].startswith("verified"):
        sys.exit(f"FAILED: kill {i + 1}: no checkpoint loads exactly\n{check.stdout}\n{check.stderr}")
    step = int(lines[0].split("step_")[-1].split()[0])
    if step < seen:
        sys.exit(f"FAILED: kill {i + 1}: the newest loadable checkpoint is step {step}, but step {seen} had completed")
    steps.append(step)
print(f"{len(steps)} of {rounds} kills left a checkpoint that loads exactly (newest steps: "
      f"{', '.join(map(str, steps))})")
