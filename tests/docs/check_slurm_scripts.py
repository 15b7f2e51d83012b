#!/usr/bin/env python3
"""Runs the batch scripts of configs/slurm/ without Slurm, to check what docs/cluster.md says
they do. Stand-ins on PATH: `srun` starts the tasks with mpirun, giving each only the variables
a real srun sets (SLURM_PROCID, SLURM_LOCALID; Open MPI's rank variables removed, so Tessera
must find its rank from Slurm's), and `scontrol` records its arguments.

1. single_node.sbatch with 2 tasks and 2 GPUs for the step: each task sees the GPU of its local
   rank and one OpenMP thread; SIGUSR1 to the script (Slurm's --signal=B:SIGUSR1@120) reaches the
   ranks, which save a checkpoint and exit 0, and the script requeues the job.
2. multi_node.sbatch as the requeued job (SLURM_RESTART_COUNT=1): it resumes from that checkpoint.

    python3 tests/docs/check_slurm_scripts.py --tessera build/launcher/tessera --work DIR
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]

SRUN = """#!/bin/bash
# srun stand-in: skips srun's options, runs the command once per task under mpirun.
while [[ $# -gt 0 && $1 == --* ]]; do shift; done
exec mpirun --oversubscribe --allow-run-as-root -np "$SLURM_NTASKS" bash -c \\
  'export SLURM_PROCID=$OMPI_COMM_WORLD_RANK SLURM_LOCALID=$OMPI_COMM_WORLD_LOCAL_RANK
   unset OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_LOCAL_RANK
   exec "$@"' srun-task "$@"
"""
SCONTROL = """#!/bin/bash
echo "$*" >> "$SCONTROL_LOG"
"""
# The TESSERA the scripts run: reports what the task sees, then runs the real one.
TASK = """#!/bin/bash
echo "task $SLURM_PROCID local $SLURM_LOCALID: CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}} OMP_NUM_THREADS=$OMP_NUM_THREADS"
exec {tessera} "$@"
"""


def fail(what, out):
    sys.exit(f"FAILED: {what}; the output was:\n{out}")


def run_script(script, env, args, stop_after_step=None, timeout=180):
    """Runs `bash script args`; with stop_after_step, sends SIGUSR1 to it once that step is logged."""
    proc = subprocess.Popen(["bash", str(ROOT / "configs" / "slurm" / script), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, deadline = [], time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            if stop_after_step is not None and line.startswith(f"step {stop_after_step}/"):
                proc.send_signal(signal.SIGUSR1)
                stop_after_step = None
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(script, timeout)
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        fail(f"{script} did not finish in {timeout} s", "".join(lines))
    return proc.returncode, "".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tessera", required=True, type=pathlib.Path)
    p.add_argument("--work", required=True, type=pathlib.Path)
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    bin_dir = args.work / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL),
                       ("tessera-task", TASK.format(tessera=args.tessera.resolve()))):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    ckpt, log = args.work / "ckpt", args.work / "scontrol.log"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", TESSERA=str(bin_dir / "tessera-task"),
               SCONTROL_LOG=str(log), XDG_CACHE_HOME=str(args.work / "cache"), SLURM_JOB_ID="4242",
               SLURM_NTASKS="2", SLURM_NNODES="1", SLURM_JOB_NODELIST="node01", SLURM_CPUS_PER_TASK="1",
               CUDA_VISIBLE_DEVICES="2,5", SRUN_MPI="none")
    env.pop("SLURM_RESTART_COUNT", None)
    common = ["configs/tests/gpt_tiny.yaml", "--set", f"checkpoint.dir={ckpt}", "--set", "log.interval=1"]

    rc, out = run_script("single_node.sbatch", env, [*common, "--set", "train.max_steps=100000"], stop_after_step=3)
    if rc != 0:
        fail(f"single_node.sbatch exited with {rc} after SIGUSR1, expected 0", out)
    for task, gpu in ((0, 2), (1, 5)):
        if f"task {task} local {task}: CUDA_VISIBLE_DEVICES={gpu} OMP_NUM_THREADS=1" not in out:
            fail(f"task {task} should see GPU {gpu} (its local rank's) and 1 thread", out)
    if not re.search(r"^tessera \S+ \| world 2 = dp 2 x tp 1 x pp 1 \| 1 thread per rank$", out, re.M):
        fail("the banner of 2 ranks found through Slurm's variables, train.threads from --cpus-per-task", out)
    if "\r" in out:
        fail("a '\\r' in a batch log", out)
    saved = re.findall(r"^checkpoint: step (\d+) saved to ", out, re.M)
    if len(saved) != 1 or "forwarding to the ranks" not in out or "requeueing job 4242" not in out:
        fail("SIGUSR1: forwarded, one checkpoint saved, the job requeued", out)
    if not log.exists() or log.read_text() != "requeue 4242\n":
        fail(f"scontrol should have been called once as `scontrol requeue 4242`, got {log.read_text() if log.exists() else 'nothing'!r}", out)
    step = int(saved[0])

    env["SLURM_RESTART_COUNT"] = "1"
    log.unlink()
    rc, out = run_script("multi_node.sbatch", env, [*common, "--set", f"train.max_steps={step + 2}"])
    if rc != 0:
        fail(f"the requeued multi_node.sbatch exited with {rc}", out)
    if f"resume auto: {ckpt}/step_{step}" not in out or f"checkpoint: resumed from {ckpt}/step_{step} at step {step}" not in out:
        fail(f"the requeued job should resume from step_{step}", out)
    if not re.search(rf"^step {step + 2}/{step + 2} \|", out, re.M) or log.exists():
        fail("the requeued job should finish its steps without requeueing again", out)
    print(f"check_slurm_scripts: GPU per local rank, SIGUSR1 -> checkpoint at step {step} -> requeue -> resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
