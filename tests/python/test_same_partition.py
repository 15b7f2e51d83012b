"""`partition: auto` is decided once, by the runtime's bring-up, for every entry point: the Python
Trainer runs the split `tessera train` runs, and both follow the machine model (the calibration
cache both read; partitioner/machine_model.h).

    test_same_partition.py --tessera BIN --mpirun MPIRUN

mlp_tiny under tp 2 x pp 2 on 4 ranks, with a calibration cache holding a machine whose tp link
is so slow that the cost model's split differs from the FLOP split (the cluster of
tests/planner/slow_link_cluster.yaml): `tessera train` without a cache (FLOP split), with the
cache (the cost model's), and the Python Trainer with the cache, which must report the same
split as the second. Cost: three 4-rank jobs of one step each, ~15 s on 2 cores.
Exits 77 (skipped) when the tessera module cannot be imported. Run from the source root.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

CONFIG = "configs/tests/mlp_tiny.yaml"
LAYOUT = ["parallel.tensor_model_parallel_size=2", "parallel.pipeline_model_parallel_size=2", "train.max_steps=1",
          "train.threads=1"]
MPI_FLAGS = ["--oversubscribe", "--allow-run-as-root", "--bind-to", "none", "-np", "4"]
# tests/planner/slow_link_cluster.yaml as a calibration cache (JSON, as `tessera plan --calibrate` writes).
SLOW_LINK = {"tessera_calibration": 1, "cluster": {
    "name": "test_slow_link", "devices_per_node": 4, "nodes": 1, "oversubscribe": True, "node_memory_gib": 16,
    "device": {"name": "test core", "peak_tflops": 0.1, "memory_bandwidth_gb_s": 20},
    "intra_node": {"latency_us": 1, "bandwidth_gb_s": 0.001},
    "inter_node": {"latency_us": 1, "bandwidth_gb_s": 0.001}}}
PY_TRAINER = ("import sys, tessera\n"
              "t = tessera.Trainer(tessera.Config.from_yaml(sys.argv[1], sys.argv[2:]))\n"
              "if t.rank == 0: print('partition:', t.partition, flush=True)\n")


def run(cmd, cache):
    env = dict(os.environ, XDG_CACHE_HOME=cache, OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def banner_split(out):
    m = re.search(r"^  stages +\[([0-9, ]+)\] \(auto, balanced by ([^)]+)\)", out, re.M)
    if not m:
        sys.exit(f"FAIL: no auto stage line in the banner:\n{out}")
    return [int(x) for x in m.group(1).split(", ")], m.group(2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tessera", required=True)
    p.add_argument("--mpirun", required=True)
    args = p.parse_args()
    try:
        import tessera  # noqa: F401  (no MPI until a Trainer is made)
    except ImportError as error:
        print(f"skipped: the tessera module is not available ({error})")
        return 77
    sets = [x for o in LAYOUT for x in ("--set", o)]
    with tempfile.TemporaryDirectory() as tmp:
        empty, cached = os.path.join(tmp, "empty"), os.path.join(tmp, "cached")
        os.makedirs(os.path.join(cached, "tessera"))
        with open(os.path.join(cached, "tessera", "calibration.json"), "w") as f:
            json.dump(SLOW_LINK, f)
        train = [args.mpirun, *MPI_FLAGS, args.tessera, "train", CONFIG, *sets]
        flops, flop_source = banner_split(run(train, empty))
        split, source = banner_split(run(train, cached))
        py_out = run([args.mpirun, *MPI_FLAGS, sys.executable, "-c", PY_TRAINER, CONFIG, *LAYOUT], cached)
    m = re.search(r"^partition: \[([0-9, ]+)\]$", py_out, re.M)
    if not m:
        sys.exit(f"FAIL: the Python Trainer printed no partition:\n{py_out}")
    py_split = [int(x) for x in m.group(1).split(", ")]
    print(f"tessera train: {flops} by {flop_source} without a cache, {split} by {source} with it; "
          f"Python Trainer with it: {py_split}")
    if flop_source != "FLOPs" or source != "the cost model":
        sys.exit("FAIL: the banner does not name the FLOP and the cost-model balance")
    if split == flops:
        sys.exit("FAIL: the machine model does not change the split: the test shows nothing")
    if py_split != split:
        sys.exit("FAIL: the Python Trainer runs another partition than tessera train")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
