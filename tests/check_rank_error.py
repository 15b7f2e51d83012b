#!/usr/bin/env python3
"""An error on one rank during training, through the real `tessera train` under mpirun: a
2-rank tp 2 job with parallel.timeout_s = 1 trains a few steps, then the test stops world rank 1
(SIGSTOP: a hung process, as a stuck device or a swapped-out host makes one). Rank 0 must print
exactly one error line for the job,

    tessera: error on rank 0: timeout after 1.0 s in <op> on group '<g>' (rank 0 of 2, world
    rank 0) at step S: waiting for peer rank 1 (world rank 1) ...

naming itself, the stalled peer and a step the job had reached, exactly once, and the job must end
(MPI_Abort from rank 0; mpirun kills the stopped rank) with a non-zero exit within 30 s of the
stall. The stalled rank itself may add one line of its own when mpirun's abort wakes it.
This is the line docs/failures.md promises for an error on one rank."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

# Which of the two details follows depends on where rank 1 stopped: before the collective that
# rank 0 waits in, or inside it (having entered it).
LINE = re.compile(r"tessera: error on rank 0: timeout after 1\.0 s in (?P<op>[a-z_]+) on group '(?P<group>\w+)' "
                  r"\(rank 0 of 2, world rank 0\) at step (?P<step>\d+): "
                  r"(waiting for peer rank 1 \(world rank 1\), which has not entered this (?P=op) \(#\d+\); "
                  r"its last call: .*|every peer entered (?P=op) #\d+ but it did not complete \(a peer may be "
                  r"stuck inside it\)); this rank's last calls, oldest first: .*\((?:step \d+), waiting\)")


def world_rank_pids(mpirun_pid, exe):
    """{world rank: pid} of the processes under mpirun (any depth) that run the tessera binary."""
    children = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = {}, [mpirun_pid]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                if os.path.realpath(f"/proc/{pid}/exe") != os.path.realpath(exe):
                    continue
                env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                rank = next(int(v.split(b"=")[1]) for v in env if v.startswith(b"OMPI_COMM_WORLD_RANK="))
                found[rank] = pid
            except (OSError, StopIteration):
                pass
    return found


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "metrics.jsonl")
        cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", args.tessera, "train", args.config,
               "--set", "parallel.tensor_model_parallel_size=2", "--set", "parallel.timeout_s=1",
               "--set", "train.max_steps=100000", "--set", "train.optimizer.decay_steps=100000",
               "--set", "train.eval_interval=0", "--set", "train.threads=1",
               "--set", "log.interval=1", "--set", f"log.metrics={metrics}"]
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        rows = 0
        while time.time() < deadline and job.poll() is None and rows < 3:
            time.sleep(0.01)
            rows = len(open(metrics).read().split("\n")) - 1 if os.path.exists(metrics) else 0
        ranks = world_rank_pids(job.pid, args.tessera)
        if rows < 3 or sorted(ranks) != [0, 1]:
            job.kill()
            sys.exit(f"FAILED: no 3 steps, or not world ranks 0 and 1 ({ranks}):\n{job.communicate()[0]}")
        os.kill(ranks[1], signal.SIGSTOP)
        stalled = time.time()
        try:
            out, err = job.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            job.kill()
            os.kill(ranks[1], signal.SIGKILL)
            sys.exit("FAILED: the job did not end within 30 s of the stall")
        seconds = time.time() - stalled
        reached = max(json.loads(line)["step"] for line in open(metrics))
    errors = [line for line in (out + err).splitlines() if line.startswith("tessera: error")]
    first = [line for line in errors if line.startswith("tessera: error on rank 0: ")]
    # Open MPI's abort sends the stopped rank SIGCONT before it kills it; resumed, rank 1 may
    # find its own deadline passed and print its line too, once at most.
    others = [line for line in errors if line not in first]
    late = len(others) == 1 and others[0].startswith("tessera: error on rank 1: timeout after 1.0 s in ")
    if job.returncode == 0 or len(first) != 1 or not LINE.fullmatch(first[0]) or (others and not late):
        sys.exit(f"FAILED: exit {job.returncode}; want exactly one line matching\n  {LINE.pattern}\n"
                 f"(and at most one timeout line of the stalled rank 1), got {len(errors)}:\n" + "\n".join(errors) +
                 f"\n--- stderr:\n{err}")
    errors = first
    step = int(LINE.fullmatch(errors[0])["step"])
    if not reached <= step <= reached + 1:
        sys.exit(f"FAILED: the error names step {step}, but the job had logged step {reached} when rank 1 stalled")
    print(f"OK: exit {job.returncode} {seconds:.1f} s after rank 1 stalled, one line:\n  {errors[0][:240]}")


if __name__ == "__main__":
    main()
