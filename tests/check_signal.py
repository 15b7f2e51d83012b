#!/usr/bin/env python3
"""Preemption check. A running 2-rank job gets a stop signal: SIGUSR1 or SIGTERM, sent to
mpirun (which forwards SIGUSR1 to every rank) or straight to each rank process (what srun does
on preemption, and Slurm's --signal). Every rank must stop after the same step and save a
complete checkpoint; a --resume run must then continue with exactly the losses of a run that
was never stopped.

mpirun's exit code is checked against --expect-exit: mpirun returns 0 only when every rank
returned 0, so 0 also says that each rank exited 0. SIGTERM to mpirun itself is Open MPI's "kill
the job": SIGCONT to the ranks at once, SIGTERM after odls_base_sigkill_timeout seconds, SIGKILL
as long again after that. The ranks save in that window, then block in MPI_Finalize (mpirun no
longer takes part) until the SIGKILL, and mpirun exits 1 (docs/failures.md). That mode runs with
--expect-exit 1 and still requires the saved checkpoint and the exact resume.

The signalled run logs nothing to stdout: once mpirun stops forwarding the ranks' output, a
rank that prints can block in write() before it reaches the step boundary."""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def rank_pids(mpirun_pid, exe):
    """The processes under mpirun (any depth) that run the tessera binary."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [mpirun_pid]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                if os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(exe):
                    found.append(pid)
            except OSError:
                pass
    return found


def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path))}


def check_complete(ckpt):
    """The step `latest` names, after checking that its manifest has that step and lists files
    that all exist at their recorded sizes, and that no staging directory is left; and the
    number of those files."""
    latest = open(os.path.join(ckpt, "latest")).read().strip()
    step = int(latest.removeprefix("step_"))
    step_dir = os.path.join(ckpt, latest)
    manifest = json.load(open(os.path.join(step_dir, "manifest.json")))
    if manifest["step"] != step:
        sys.exit(f"FAILED: {step_dir}/manifest.json has step {manifest['step']}")
    for f in manifest["files"]:
        path = os.path.join(step_dir, f["name"])
        if not os.path.isfile(path) or os.path.getsize(path) != f["bytes"]:
            sys.exit(f"FAILED: {path} is missing or not {f['bytes']} bytes")
    leftovers = [n for n in os.listdir(ckpt) if n.endswith(".tmp")]
    if leftovers:
        sys.exit(f"FAILED: staging directories left in {ckpt}: {leftovers}")
    return step, len(manifest["files"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--signal", choices=["USR1", "TERM"], default="USR1")
    p.add_argument("--to", choices=["mpirun", "ranks"], default="mpirun", help="who gets the signal")
    p.add_argument("--expect-exit", type=int, default=0, help="mpirun's exit code")
    p.add_argument("--mpirun-flag", action="append", default=[], help="an extra mpirun argument (repeatable)")
    args = p.parse_args()
    sig = getattr(signal, "SIG" + args.signal)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")

        def command(ckpt_dir, steps, sets):
            return [args.mpirun, "--oversubscribe", "--allow-run-as-root", *args.mpirun_flag, "-np", "2",
                    args.tessera, "train", args.config, "--set", "parallel.tensor_model_parallel_size=2",
                    "--set", f"checkpoint.dir={ckpt_dir}", "--set", "train.optimizer.decay_steps=100000",
                    "--set", "train.eval_interval=0", "--set", "train.threads=1",
                    "--set", f"train.max_steps={steps}", *[a for kv in sets for a in ("--set", kv)]]

        # A checkpoint at step 5 says that training runs (and that the handlers are installed).
        job = subprocess.Popen(command(ckpt, 100000, ["checkpoint.interval=5", "log.interval=100000"]),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and job.poll() is None and not os.path.exists(os.path.join(ckpt, "latest")):
            time.sleep(0.1)
        if job.poll() is not None or not os.path.exists(os.path.join(ckpt, "latest")):
            job.kill()
            sys.exit(f"FAILED: no checkpoint at step 5 before the signal:\n{job.communicate()[0]}")
        ranks = rank_pids(job.pid, args.tessera)
        if len(ranks) != 2:
            job.kill()
            sys.exit(f"FAILED: found {len(ranks)} rank processes under mpirun, expected 2")
        for pid in ranks if args.to == "ranks" else [job.pid]:
            os.kill(pid, sig)
        t0 = time.time()
        try:
            out = job.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            job.kill()
            sys.exit(f"FAILED: the job did not end within 120 s of SIG{args.signal}")
        seconds = time.time() - t0
        if job.returncode != args.expect_exit:
            sys.exit(f"FAILED: mpirun exit {job.returncode} (expected {args.expect_exit}), output:\n{out}")
        if job.returncode == 0 and "stop requested: checkpoint saved at step" not in out:
            sys.exit(f"FAILED: no stop line in the output:\n{out}")
        step, files = check_complete(ckpt)
        if step <= 5:
            sys.exit(f"FAILED: the newest checkpoint is step {step}: nothing was saved after the signal\n{out}")

        resumed_metrics, reference_metrics = os.path.join(tmp, "resumed.jsonl"), os.path.join(tmp, "reference.jsonl")
        logged = ["log.interval=1"]
        resumed = subprocess.run(command(ckpt, step + 2, logged + [f"log.metrics={resumed_metrics}"]) + ["--resume"],
                                 capture_output=True, text=True, timeout=120)
        if resumed.returncode != 0 or f"at step {step}" not in resumed.stdout:
            sys.exit(f"FAILED: resume after the signal:\n{resumed.stdout}\n{resumed.stderr}")
        reference = subprocess.run(command(os.path.join(tmp, "ref"), step + 2,
                                           logged + [f"log.metrics={reference_metrics}"]),
                                   capture_output=True, text=True, timeout=300)
        if reference.returncode != 0:
            sys.exit(f"FAILED: the uninterrupted run:\n{reference.stdout}\n{reference.stderr}")
        got, want = losses(resumed_metrics), losses(reference_metrics)
        for s in (step + 1, step + 2):
            if got.get(s) != want[s]:
                sys.exit(f"FAILED: step {s}: resumed loss {got.get(s)!r}, uninterrupted {want[s]!r}")
    print(f"OK: SIG{args.signal} to {args.to}: both ranks stopped after step {step}, mpirun exited {job.returncode} "
          f"{seconds:.1f} s after the signal; checkpoint complete ({files} shard files); --resume steps "
          f"{step + 1}-{step + 2} bit-identical to the uninterrupted run")


if __name__ == "__main__":
    main()
