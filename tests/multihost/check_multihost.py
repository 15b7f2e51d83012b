#!/usr/bin/env python3
"""Two hosts on one machine: makes two network namespaces joined by a veth pair
(10.77.0.1/24 and 10.77.0.2/24), runs a 4-rank job (tp = 2, dp = 2, two ranks per host) across
them with OpenMPI's TCP transport, and checks
  (a) its losses equal a single-process run of the same config (relative rtol per step), and
  (b) with parallel.timeout_s=5, cutting the link after a few logged steps ends the job
      non-zero within --cut-deadline seconds with an error naming the timeout.
mpirun runs inside the first namespace; its rsh agent runs orted inside the namespace named by
the host (the hosts are the IP addresses themselves, no /etc/hosts). Namespaces and veths are
removed at the end and before starting (left over from a killed run). Exits 77 (skip) when not
root or when network namespaces cannot be made. Standard library only."""
import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

SKIP = 77
NS = ("tessera_mh1", "tessera_mh2")
VETH = ("tmh_veth1", "tmh_veth2")
ADDR = ("10.77.0.1", "10.77.0.2")
SUBNET = "10.77.0.0/24"


def sh(*cmd, check=True):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check)


def cleanup():
    """Kills what still runs in our namespaces, then removes them and the veths."""
    for ns in NS:
        if not os.path.exists(f"/run/netns/{ns}"):
            continue
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)
    for veth in VETH:  # a veth still in the root namespace (setup failed half-way)
        sh("ip", "link", "del", veth, check=False)


def setup():
    sh("ip", "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1])
    for ns, veth, addr in zip(NS, VETH, ADDR):
        sh("ip", "link", "set", veth, "netns", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
        sh("ip", "-n", ns, "link", "set", veth, "up")
        # A cut link must end mpirun too: after MPI_Abort it tells the remote orted to kill its
        # ranks and waits for the answer, which TCP retransmits for ~15 min by default. Give up
        # after a few seconds instead (a per-namespace setting; the machine's is untouched).
        sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_retries2=4")
    # the link is up once each side can reach the other
    if not shutil.which("ping"):
        time.sleep(1)
        return
    for _ in range(50):
        if sh("ip", "netns", "exec", NS[0], "ping", "-c1", "-W1", ADDR[1], check=False).returncode == 0:
            return
        time.sleep(0.1)
    sys.exit(f"FAILED: {ADDR[0]} cannot ping {ADDR[1]} across the veth pair")


def write_agent(tmp):
    """The rsh agent: `agent HOST COMMAND...` runs COMMAND inside HOST's namespace."""
    path = os.path.join(tmp, "netns_agent.sh")
    cases = "\n".join(f"  {addr}) ns={ns} ;;" for addr, ns in zip(ADDR, NS))
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
# OpenMPI rsh agent for the multi-host test: host (an IP) -> network namespace.
while [ $# -gt 0 ]; do
  case "$1" in -*) shift ;; *) break ;; esac   # ignore ssh-style options, if any
done
host="$1"; shift
case "$host" in
{cases}
  *) echo "netns_agent: unknown host $host" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" sh -c "$*"
""")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def train_args(args, metrics, extra):
    cmd = [args.tessera, "train", args.config, "--set", f"log.metrics={metrics}",
           "--set", "train.threads=1", "--set", "log.interval=1", "--set", "train.eval_interval=0",
           "--set", f"train.max_steps={args.steps}"]
    for o in extra:
        cmd += ["--set", o]
    return cmd


def multihost_cmd(args, agent, metrics, extra):
    return (["ip", "netns", "exec", NS[0], args.mpirun, "--allow-run-as-root", "--oversubscribe",
             "--bind-to", "none", "-np", "4", "--host", f"{ADDR[0]}:2,{ADDR[1]}:2",
             "--mca", "plm_rsh_agent", agent, "--mca", "btl", "tcp,self",
             "--mca", "btl_tcp_if_include", SUBNET, "--mca", "oob_tcp_if_include", SUBNET,
             # an idle mpirun-orted connection over a cut link is noticed within ~10 s
             "--mca", "oob_tcp_keepalive_time", "4", "--mca", "oob_tcp_keepalive_intvl", "2",
             "--mca", "oob_tcp_keepalive_probes", "3"]
            + train_args(args, metrics, ["parallel.tensor_model_parallel_size=2"] + extra))


def read_metrics(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line being written
    return out


def run(cmd, timeout, label):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"FAILED ({label}, exit {r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    print(f"{label}: {dt:.1f} s", flush=True)


def check_losses(args, agent, tmp):
    base_path, mh_path = os.path.join(tmp, "base.jsonl"), os.path.join(tmp, "mh.jsonl")
    run([args.mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "1"]
        + train_args(args, base_path, []), args.timeout, "single-process run")
    run(multihost_cmd(args, agent, mh_path, []), args.timeout, "2-host run (4 ranks, tp=2 dp=2)")
    base, mh = read_metrics(base_path), read_metrics(mh_path)
    if len(base) != args.steps or len(mh) != args.steps:
        sys.exit(f"FAILED: expected {args.steps} logged steps, got {len(base)} (1 rank) and {len(mh)} (2 hosts)")
    worst = 0.0
    for b, q in zip(base, mh):
        if b["step"] != q["step"]:
            sys.exit(f"FAILED: step {q['step']} logged where step {b['step']} was expected")
        rel = abs(b["loss"] - q["loss"]) / max(abs(b["loss"]), 1e-12)
        worst = max(worst, rel)
        if rel > args.rtol:
            sys.exit(f"FAILED at step {b['step']}: loss {q['loss']!r} (2 hosts) vs {b['loss']!r} "
                     f"(1 rank): relative {rel:.2e} > {args.rtol:g}")
    print(f"OK (a): {args.steps} steps across 2 hosts equal 1 rank: max relative loss difference "
          f"{worst:.2e} (first {base[0]['loss']:.6f}, last {base[-1]['loss']:.6f})", flush=True)


def check_cut_link(args, agent, tmp):
    metrics = os.path.join(tmp, "cut.jsonl")
    log_path = os.path.join(tmp, "cut.log")
    cmd = multihost_cmd(args, agent, metrics, ["parallel.timeout_s=5", "train.max_steps=100000"])
    with open(log_path, "w") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while len(read_metrics(metrics)) < args.cut_after:
                if proc.poll() is not None:
                    sys.exit(f"FAILED: the job ended (exit {proc.returncode}) before "
                             f"{args.cut_after} steps were logged:\n{open(log_path).read()}")
                if time.monotonic() - t0 > args.timeout:
                    sys.exit(f"FAILED: fewer than {args.cut_after} steps logged in {args.timeout} s")
                time.sleep(0.1)
            steps = len(read_metrics(metrics))
            sh("ip", "-n", NS[1], "link", "set", VETH[1], "down")
            t_cut = time.monotonic()
            print(f"(b): cut the link ({VETH[1]} down in {NS[1]}) after {steps} logged steps, "
                  f"{t_cut - t0:.1f} s into the job", flush=True)
            try:
                rc = proc.wait(timeout=args.cut_deadline)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.monotonic() - t_cut
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    out = open(log_path, errors="replace").read()
    print(f"--- output of the cut-link run (last 40 lines) ---")
    print("\n".join(out.splitlines()[-40:]))
    print("---", flush=True)
    if rc is None:
        sys.exit(f"FAILED (b): the job still ran {args.cut_deadline} s after the link was cut")
    if rc == 0:
        sys.exit(f"FAILED (b): the job exited 0 after the link was cut")
    if "timeout after 5.0 s in" not in out:
        sys.exit(f"FAILED (b): exit {rc} {took:.1f} s after the cut, but no 'timeout after 5.0 s in' message")
    msgs = [l.strip() for l in out.splitlines() if "timeout after 5.0 s in" in l]
    print(f"OK (b): exit {rc} {took:.1f} s after the cut; {len(msgs)} timeout message(s), first: {msgs[0]}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--timeout", type=float, default=90, help="limit per training run, s")
    p.add_argument("--cut-after", type=int, default=3, help="logged steps before the cut")
    p.add_argument("--cut-deadline", type=float, default=60, help="s the job may run after the cut")
    args = p.parse_args()
    args.tessera = os.path.abspath(args.tessera)
    args.mpirun = shutil.which(args.mpirun) or args.mpirun

    if os.geteuid() != 0:
        print("SKIP: needs root (ip netns)")
        return SKIP
    if not shutil.which("ip") or not os.path.exists(args.mpirun):
        print("SKIP: no `ip` or no mpirun")
        return SKIP
    cleanup()
    try:
        probe = sh("ip", "netns", "add", NS[0], check=False)
        if probe.returncode != 0:
            print(f"SKIP: ip netns unavailable: {probe.stderr.strip()}")
            return SKIP
        sh("ip", "netns", "add", NS[1])
        setup()
        with tempfile.TemporaryDirectory() as tmp:
            agent = write_agent(tmp)
            t0 = time.monotonic()
            check_losses(args, agent, tmp)
            check_cut_link(args, agent, tmp)
            print(f"total {time.monotonic() - t0:.1f} s")
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("FAILED: terminated"))  # runs the finally
    sys.exit(main())
