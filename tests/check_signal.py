#!/usr/bin/env python3
"""Preemption check: SIGUSR1 to mpirun (forwarded to every rank, as Slurm's --signal does)
makes a running job save a checkpoint at the next step boundary and exit 0; a --resume run
then continues from that step."""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, metrics = os.path.join(tmp, "ckpt"), os.path.join(tmp, "m.jsonl")
        base = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", args.tessera, "train", args.config,
                "--set", "parallel.tensor_model_parallel_size=2", "--set", f"checkpoint.dir={ckpt}",
                "--set", "train.optimizer.decay_steps=100000", "--set", "train.eval_interval=0",
                "--set", "train.threads=1", "--set", f"log.metrics={metrics}", "--set", "log.interval=1"]
        job = subprocess.Popen(base + ["--set", "train.max_steps=100000"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and job.poll() is None:
            if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
                break
            time.sleep(0.2)
        if job.poll() is not None:
            sys.exit(f"FAILED: the job ended before the signal:\n{job.communicate()[0]}")
        job.send_signal(signal.SIGUSR1)
        try:
            out = job.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            job.kill()
            sys.exit("FAILED: the job did not end within 120 s of SIGUSR1")
        if job.returncode != 0 or "stop requested: checkpoint saved at step" not in out:
            sys.exit(f"FAILED: exit {job.returncode}, output:\n{out}")
        step = int(out.split("stop requested: checkpoint saved at step ")[1].split(",")[0])
        latest = open(os.path.join(ckpt, "latest")).read().strip()
        if latest != f"step_{step}":
            sys.exit(f"FAILED: latest is {latest!r}, expected step_{step}")
        resumed = subprocess.run(base + ["--set", f"train.max_steps={step + 2}", "--resume"],
                                 capture_output=True, text=True, timeout=120)
        if resumed.returncode != 0 or f"at step {step}" not in resumed.stdout:
            sys.exit(f"FAILED: resume after the signal:\n{resumed.stdout}\n{resumed.stderr}")
        last = [json.loads(line) for line in open(metrics)][-1]
        if last["step"] != step + 2:
            sys.exit(f"FAILED: the resumed run ended at step {last['step']}, expected {step + 2}")
    print(f"OK: SIGUSR1 saved step {step} and exited 0; --resume continued to step {step + 2}")


if __name__ == "__main__":
    main()
