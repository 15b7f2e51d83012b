#!/usr/bin/env python3
"""Preemption check. A running 2-rank job gets a stop signal: SIGUSR1 or SIGTERM, sent to
mpirun (which forwards SIGUSR1 to every rank) or straight to each rank process (what srun does
on preemption, and Slurm's --signal). Every rank must stop after the step during which the
signal reached it and save a complete checkpoint of exactly that step (the job saves nothing
else: checkpoint.interval is 0), rank 0 must print the stop line once, and a --resume run must
then continue with exactly the losses of a run that was never stopped.

The test sends the signal right after a step's metrics row appears, so a signal that reaches
the ranks at once (sent to the ranks) must stop them after the next step, exactly. One that
mpirun passes on reaches them later: the saved step must be one that ran while it could have
arrived (ARRIVAL below), judged from when each metrics row appeared.

mpirun's exit code is checked against --expect-exit: mpirun returns 0 only when every rank
returned 0, so 0 also says that each rank exited 0. SIGTERM to mpirun itself is Open MPI's "kill
the job": SIGCONT to the ranks at once, SIGTERM after odls_base_sigkill_timeout seconds, SIGKILL
as long again after that. The ranks save in that window, then block in MPI_Finalize (mpirun no
longer takes part) until the SIGKILL, and mpirun exits 1 (docs/failures.md). That mode runs with
--expect-exit 1 and still requires the saved checkpoint, the stop line and the exact resume."""
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


def read_rows(path):
    """The complete lines of a metrics file being written: [step, ...]."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")[:-1]  # the last piece may be a line still being written
    except OSError:
        return []
    return [json.loads(line)["step"] for line in lines]


class StepClock:
    """When each metrics row appeared: the end of each step, as seen from outside the job."""

    def __init__(self, path):
        self.path, self.seen = path, {}

    def poll(self):
        now = time.monotonic()
        for step in read_rows(self.path):
            self.seen.setdefault(step, now)
        return max(self.seen, default=0)

    def running_at(self, t):
        """The steps that may have been running at time t: from the last one that had ended
        before t, plus one, to the first that had not ended."""
        ended = [s for s, when in self.seen.items() if when <= t]
        later = [s for s, when in self.seen.items() if when > t]
        first = max(ended, default=0) + 1
        return range(first, (min(later) if later else first) + 1)


# Where the signal reaches the ranks, in seconds after it is sent: at once when the test sends
# it to the ranks; after mpirun forwards it for SIGUSR1; odls_base_sigkill_timeout (1 s) later
# for SIGTERM to mpirun. The window's width is how late a loaded 2-core machine may run mpirun's
# forwarding or its timer.
ARRIVAL = {("ranks", "USR1"): (0.0, 0.0), ("ranks", "TERM"): (0.0, 0.0),
           ("mpirun", "USR1"): (0.0, 0.25), ("mpirun", "TERM"): (1.0, 1.5)}


def signal_job(args, command, tmp, ckpt):
    """Runs the job to be signalled, signals it right after a step ends, and returns (mpirun's
    exit code, seconds from the signal to the end, the step the signal should stop it at (a
    range), rank 0's output). The ranks write their output to files, never to mpirun: once
    mpirun stops forwarding it (SIGTERM to mpirun), a rank that prints would block in write()."""
    sig = getattr(signal, "SIG" + args.signal)
    metrics = os.path.join(tmp, "signalled.jsonl")
    logs = os.path.join(tmp, "rank")
    # No interval saves: the only checkpoint is the one the signal makes.
    train = command(ckpt, 100000, ["checkpoint.interval=0", "log.interval=1", f"log.metrics={metrics}"])
    mpirun, rest = train[:train.index(args.tessera)], train[train.index(args.tessera):]
    wrapped = mpirun + ["sh", "-c", f'exec "$0" "$@" > {logs}.$OMPI_COMM_WORLD_RANK.log 2>&1'] + rest
    job = subprocess.Popen(wrapped, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    clock = StepClock(metrics)
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None and clock.poll() < 3:
        time.sleep(0.001)
    ranks = rank_pids(job.pid, args.tessera)
    if job.poll() is not None or clock.poll() < 3 or len(ranks) != 2:
        job.kill()
        sys.exit(f"FAILED: no 3 steps (or not 2 ranks: {ranks}) before the signal:\n{job.communicate()[0]}")
    # Signal right after a step ends, so the step it reaches is the next one, a whole step away
    # from a boundary.
    last = clock.poll()
    while clock.poll() == last:
        time.sleep(0.0005)
    before = clock.poll()
    for pid in ranks if args.to == "ranks" else [job.pid]:
        os.kill(pid, sig)
    sent = time.monotonic()
    # Normally no row appears in between; if this process was descheduled before the kill, a
    # step that ended meanwhile widens the range by one.
    after = clock.poll()
    lo, hi = ARRIVAL[(args.to, args.signal)]
    try:
        while job.poll() is None and time.monotonic() < sent + 120:
            clock.poll()
            time.sleep(0.001)
        out = job.communicate(timeout=1)[0]
    except subprocess.TimeoutExpired:
        job.kill()
        sys.exit(f"FAILED: the job did not end within 120 s of SIG{args.signal}")
    clock.poll()
    if lo == hi:
        expected = range(before + 1, after + 2)  # sent just after row `before`: the next step
    else:
        expected = range(clock.running_at(sent + lo).start, clock.running_at(sent + hi).stop)
    rank0 = open(f"{logs}.0.log").read()
    return job.returncode, time.monotonic() - sent, expected, out + rank0, max(clock.seen)


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
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")

        def command(ckpt_dir, steps, sets):
            return [args.mpirun, "--oversubscribe", "--allow-run-as-root", *args.mpirun_flag, "-np", "2",
                    args.tessera, "train", args.config, "--set", "parallel.tensor_model_parallel_size=2",
                    "--set", f"checkpoint.dir={ckpt_dir}", "--set", "train.optimizer.decay_steps=100000",
                    "--set", "train.eval_interval=0", "--set", "train.threads=1",
                    # Steps of ~50 ms (4x gpt_tiny's batch): long against this script's polling on
                    # a loaded machine, so the signal lands well inside the step after the row.
                    "--set", "train.micro_batch_size=16", "--set", "train.global_batch_size=64",
                    "--set", f"train.max_steps={steps}", *[a for kv in sets for a in ("--set", kv)]]

        code, seconds, expected, out, last_row = signal_job(args, command, tmp, ckpt)
        if code != args.expect_exit:
            sys.exit(f"FAILED: mpirun exit {code} (expected {args.expect_exit}), output:\n{out}")
        step, files = check_complete(ckpt)
        if step not in expected:
            sys.exit(f"FAILED: the checkpoint is step {step}; the signal reached the ranks during step "
                     f"{expected.start}" + (f"-{expected.stop - 1}" if len(expected) > 1 else "") + f"\n{out}")
        if last_row != step:
            sys.exit(f"FAILED: the checkpoint is step {step} but the job logged steps up to {last_row}\n{out}")
        stop_line = f"stop requested: checkpoint saved at step {step}, exiting"
        if out.count(stop_line) != 1:
            sys.exit(f"FAILED: rank 0 did not print '{stop_line}' once:\n{out}")

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
    window = f"step {expected.start}" if len(expected) == 1 else f"steps {expected.start}-{expected.stop - 1}"
    print(f"OK: SIG{args.signal} to {args.to}: both ranks stopped after step {step} (the signal reached them during "
          f"{window}), mpirun exited {code} {seconds:.1f} s after the signal; checkpoint complete ({files} shard "
          f"files); --resume steps {step + 1}-{step + 2} bit-identical to the uninterrupted run")


if __name__ == "__main__":
    main()
