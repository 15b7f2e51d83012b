#!/usr/bin/env python3
"""Synchronous data parallelism vs DiLoCo vs streaming DiLoCo across a slow link.

Two hosts on one machine (network namespaces joined by a veth pair, the multi-host test's
recipe: tests/multihost/check_multihost.py), the link shaped by `tc netem` in both
directions (default 50 Mbit/s, 20 ms). One rank per host, dp = 2, each replica training
configs/shakespeare_char.yaml's recipe on its own 12 sequences per step (global batch 24).
Per mode it reports wall time, tokens/s, the bytes that crossed the veth (interface
counters, TCP/IP and MPI overhead included) and the trainer's own dp_bytes estimate, and
the final validation loss, each logged window's step time and the part of it spent waiting
on the dp link (dp_wait_ms), and the load average around the run (the machine is shared);
writes a JSON file and, with --plot, val loss against wall time.

  sudo python3 bench/bench_diloco_slow_link.py --tessera build/launcher/tessera --steps 2000

--check is the CI version (tests/multihost/multihost.cmake): gpt_tiny for a few steps,
no timings: DiLoCo across the two hosts must give the same losses as on one host, and send
at most 1/3 of synchronous DP's bytes with H = 8 (1/8 ideally; MPI's start-up and the logged
steps' loss reductions also cross the link). Needs root and `ip netns` (exit 77 else)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "multihost"))
import check_multihost as mh  # noqa: E402  (namespaces, veths, rsh agent)

# Names of our own: the multi-host test removes its namespaces (and kills what runs in them)
# when it starts, which must not end a benchmark running beside it.
mh.NS = ("tessera_dl1", "tessera_dl2")
mh.VETH = ("tdl_veth1", "tdl_veth2")
mh.ADDR = ("10.78.0.1", "10.78.0.2")
mh.SUBNET = "10.78.0.0/24"

MODES = {
    "sync": [],
    "diloco_h20": ["parallel.data_parallel_sync=diloco", "parallel.sync_interval=20"],
    "streaming_h20": ["parallel.data_parallel_sync=diloco", "parallel.sync_interval=20",
                      "parallel.outer_fragments=4", "parallel.outer_delay=2"],
}
# The same with the outer deltas sent in bfloat16 (half the bytes of each sync).
for _name in ("diloco_h20", "streaming_h20"):
    MODES[_name + "_bf16"] = MODES[_name] + ["parallel.outer_dtype=bf16"]


def shape_link(rate, delay):
    """Shapes both directions with netem (rate and delay); where the kernel has no netem (the
    sandbox this was developed in), with a token bucket (tbf: the rate only, no added delay).
    Returns what was applied, for the report."""
    applied = f"netem rate {rate} delay {delay}"
    for ns, veth in zip(mh.NS, mh.VETH):
        netem = mh.sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", "netem", "delay", delay,
                      "rate", rate, "limit", "10000", check=False)
        if netem.returncode != 0:
            mh.sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", rate,
                  "burst", "64kb", "latency", "100ms")
            applied = f"tbf rate {rate} (no netem in this kernel: {netem.stderr.strip()}; no added delay)"
    print(f"link shaped: {applied}", flush=True)
    return applied


def tx_bytes():
    """Bytes sent by each host's veth so far."""
    total = 0
    for ns, veth in zip(mh.NS, mh.VETH):
        out = mh.sh("ip", "netns", "exec", ns, "cat", f"/sys/class/net/{veth}/statistics/tx_bytes").stdout
        total += int(out.strip())
    return total


def train_cmd(args, agent, metrics, extra, across_hosts=True):
    hosts = ["ip", "netns", "exec", mh.NS[0], args.mpirun, "--allow-run-as-root", "--oversubscribe",
             "--bind-to", "none", "-np", "2", "--host", f"{mh.ADDR[0]}:1,{mh.ADDR[1]}:1",
             "--mca", "plm_rsh_agent", agent, "--mca", "btl", "tcp,self",
             "--mca", "btl_tcp_if_include", mh.SUBNET, "--mca", "oob_tcp_if_include", mh.SUBNET]
    local = [args.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2"]
    cmd = (hosts if across_hosts else local) + [args.tessera, "train", args.config,
                                                "--set", f"log.metrics={metrics}", "--set", "train.threads=1",
                                                "--set", "checkpoint.dir=null", "--set", "checkpoint.interval=0"]
    for o in args.common + extra:
        cmd += ["--set", o]
    return cmd


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def run_mode(args, agent, tmp, name, extra):
    metrics = os.path.join(tmp, f"{name}.jsonl")
    load_before = os.getloadavg()[0]
    before = tx_bytes()
    t0 = time.monotonic()
    r = subprocess.run(train_cmd(args, agent, metrics, extra), capture_output=True, text=True, timeout=args.timeout)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"FAILED ({name}, exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    rows = mh.read_metrics(metrics)
    sent = tx_bytes() - before
    vals = [(x["step"], x["val_loss"]) for x in rows if "val_loss" in x]
    last = rows[-1]
    steps = last["step"]
    # Per logged window: step time, the part of it waited on the dp link, the rest (compute).
    step_ms = [x["step_ms"] for x in rows if "step_ms" in x]
    wait_ms = [x.get("dp_wait_ms", 0.0) for x in rows if "step_ms" in x]
    return {"load_before": load_before, "load_after": os.getloadavg()[0],
            "median_step_ms": median(step_ms), "median_dp_wait_ms": median(wait_ms),
            "mean_step_ms": sum(step_ms) / len(step_ms), "mean_dp_wait_ms": sum(wait_ms) / len(wait_ms),
            "dp_wait_ms": wait_ms,
            "mode": name, "overrides": extra, "steps": steps, "wall_s": wall,
            "tokens_per_s": steps * args.tokens_per_step / wall,
            "veth_bytes": sent, "veth_bytes_per_step": sent / steps,
            "dp_bytes_per_step": sum(x.get("dp_bytes", 0) for x in rows) / max(1, len(rows)),
            "final_loss": last["loss"], "final_val_loss": vals[-1][1] if vals else None,
            "val_curve": vals, "step_ms": [x["step_ms"] for x in rows]}


def check(args, agent, tmp):
    """CI: losses across hosts equal one host's; DiLoCo H=8 sends <= 1/3 of sync's bytes."""
    diloco = ["parallel.data_parallel_sync=diloco", "parallel.sync_interval=8"]
    local_path = os.path.join(tmp, "local.jsonl")
    r = subprocess.run(train_cmd(args, agent, local_path, diloco, across_hosts=False), capture_output=True,
                       text=True, timeout=args.timeout)
    if r.returncode != 0:
        sys.exit(f"FAILED (one host): {r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    sync = run_mode(args, agent, tmp, "sync", [])
    dil = run_mode(args, agent, tmp, "diloco_h8", diloco)
    local = mh.read_metrics(local_path)
    across = mh.read_metrics(os.path.join(tmp, "diloco_h8.jsonl"))
    if [x["step"] for x in local] != [x["step"] for x in across]:
        sys.exit("FAILED: different logged steps across hosts and on one host")
    for a, b in zip(local, across):
        rel = abs(a["loss"] - b["loss"]) / abs(a["loss"])
        if rel > 1e-6:
            sys.exit(f"FAILED at step {a['step']}: loss {b['loss']!r} across hosts vs {a['loss']!r} on one host")
    ratio = sync["veth_bytes"] / dil["veth_bytes"]
    print(f"veth bytes: sync {sync['veth_bytes']}, DiLoCo H=8 {dil['veth_bytes']} ({ratio:.2f}x fewer); "
          f"dp_bytes/step estimate: sync {sync['dp_bytes_per_step']:.0f}, DiLoCo {dil['dp_bytes_per_step']:.0f}")
    if ratio < 3:
        sys.exit(f"FAILED: DiLoCo with H = 8 sent only {ratio:.2f}x fewer bytes than synchronous DP (want >= 3)")
    print(f"OK: DiLoCo across 2 hosts equals 1 host over {len(local)} logged steps; {ratio:.2f}x fewer bytes")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", default="configs/shakespeare_char.yaml")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rate", default="50mbit")
    p.add_argument("--delay", default="20ms")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--repeats", type=int, default=1, help="runs per mode, alternated")
    p.add_argument("--out", default="bench/results/diloco_slow_link.json")
    p.add_argument("--plot", default=None, help="PNG of val loss against wall time")
    p.add_argument("--check", action="store_true", help="the short CI version (see the docstring)")
    p.add_argument("--replot", action="store_true",
                   help="only redraw --plot (the --modes) from the --out JSON files, comma-separated")
    p.add_argument("--timeout", type=float, default=7200)
    args = p.parse_args()
    if args.replot:
        results = []
        for path in args.out.split(","):  # several runs' files may make one plot
            with open(path) as f:
                saved = json.load(f)
            results += [r for r in saved["results"] if r["mode"] in args.modes.split(",")]
        args.shaping = saved["shaping"]
        plot(results, args)
        return
    if os.geteuid() != 0:
        print("SKIP: needs root for network namespaces")
        sys.exit(mh.SKIP)
    if args.check:
        args.config = "configs/tests/gpt_tiny.yaml"
        args.common = [f"train.max_steps={args.steps}", "train.eval_interval=0", "log.interval=4",
                       "train.micro_batch_size=8"]
    else:
        # shakespeare_char's recipe per replica: 12 sequences each, so a global batch of 24.
        args.common = [f"train.max_steps={args.steps}", "train.global_batch_size=24",
                       f"train.optimizer.decay_steps={args.steps}", f"train.optimizer.warmup_steps={max(1, args.steps // 20)}",
                       f"train.eval_interval={max(1, args.steps // 8)}",
                       "log.interval=10"]
    args.tokens_per_step = 24 * 64
    mh.cleanup()
    probe = mh.sh("ip", "netns", "add", mh.NS[0], check=False)
    if probe.returncode != 0:
        print(f"SKIP: ip netns unavailable: {probe.stderr.strip()}")
        sys.exit(mh.SKIP)
    try:
        mh.sh("ip", "netns", "add", mh.NS[1])
        mh.setup()
        args.shaping = shape_link(args.rate, args.delay)
        with tempfile.TemporaryDirectory() as tmp:
            agent = mh.write_agent(tmp)
            if args.check:
                check(args, agent, tmp)
                return
            results = []
            for rep in range(args.repeats):
                for name in args.modes.split(","):
                    res = run_mode(args, agent, tmp, name, MODES[name])
                    res["repeat"] = rep
                    results.append(res)
                    print(f"{name}: {res['wall_s']:.0f} s, {res['tokens_per_s']:.0f} tok/s, "
                          f"{res['veth_bytes'] / 1e6:.1f} MB over the link, val {res['final_val_loss']}, "
                          f"step {res['mean_step_ms']:.0f} ms of which dp wait {res['mean_dp_wait_ms']:.0f} ms (means), "
                          f"load {res['load_before']:.1f} -> {res['load_after']:.1f}", flush=True)
            os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
            with open(args.out, "w") as f:
                json.dump({"shaping": args.shaping, "rate": args.rate, "delay": args.delay, "steps": args.steps, "config": args.config,
                           "results": results}, f, indent=1)
            if args.plot:
                plot(results, args)
    finally:
        mh.cleanup()


def plot(results, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r["repeat"] != 0 or not r["val_curve"]:
            continue
        per_step = r["wall_s"] / r["steps"]
        ax.plot([s * per_step / 60 for s, _ in r["val_curve"]], [v for _, v in r["val_curve"]], marker="o",
                label=f"{r['mode']} ({r['wall_s'] / 60:.1f} min, {r['veth_bytes'] / 1e6:.0f} MB sent)")
    ax.set_xlabel("wall time (min, steps x mean step time)")
    ax.set_ylabel("validation loss")
    link = args.shaping.split(" (")[0] + (" (no added delay)" if args.shaping.startswith("tbf") else "")
    ax.set_title(f"shakespeare_char, 2 hosts x 1 replica, link: {link}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
