"""One layout rule, one line, whatever the entry point: `tessera train`, `tessera plan` and the
Python Trainer are fed the same bad layout and must stop with the same rule line (the rules
live in partitioner/layout_rules.cc; launcher/config_checks.cc adds the file name).

    test_layout_rule_everywhere.py --tessera BIN --mpirun MPIRUN

Two layouts: tp 3 with 4 attention heads (a rule of the config alone, single process), and a
global batch that micro batch x dp does not divide on 2 ranks (a rule that needs the world:
`mpirun -np 2 tessera train`, `tessera plan --world 2 --config-layout`, and the Python Trainer
under `mpirun -np 2`). Cost: three single-process runs and two 2-rank jobs, ~10 s idle.
Exits 77 (skipped) when the tessera module cannot be imported. Run from the source root.
"""
import argparse
import os
import subprocess
import sys

CONFIG = "configs/tests/gpt_tiny.yaml"
MPI_FLAGS = ["--oversubscribe", "--allow-run-as-root", "--bind-to", "none"]
# Only rank 0 prints: two ranks' prints can interleave mid-line in mpirun's forwarded output.
PY_TRAINER = ("import os, sys, tessera\n"
              "try:\n"
              "    tessera.Trainer(tessera.Config.from_yaml(sys.argv[1], sys.argv[2:]))\n"
              "except tessera.InputError as e:\n"
              "    if os.environ.get('OMPI_COMM_WORLD_RANK', '0') == '0':\n"
              "        sys.stdout.write(f'rule: {e}\\n')\n")


def error_line(cmd, env):
    """The 'tessera: error: ' or Python 'rule: ' line of a run that must fail on its input."""
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    text = run.stdout + run.stderr
    for line in text.splitlines():
        for prefix in ("tessera: error: ", "rule: "):
            if line.startswith(prefix):
                return line[len(prefix):]
    sys.exit(f"FAIL: no error line from {' '.join(cmd)} (exit {run.returncode}):\n{text}")


def check_same(name, lines, expected_start):
    print(f"{name}:")
    for entry, line in lines.items():
        print(f"  {entry:>7}: {line}")
    if len(set(lines.values())) != 1:
        sys.exit(f"FAIL: {name}: the entry points give different lines")
    line = next(iter(lines.values()))
    if not line.startswith(expected_start):
        sys.exit(f"FAIL: {name}: expected a line starting {expected_start!r}")


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
    env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1")
    cluster = ["--cluster", "configs/clusters/cpu_2core.yaml"]

    heads = ["parallel.tensor_model_parallel_size=3"]
    check_same("tp 3 with 4 heads", {
        "train": error_line([args.tessera, "train", CONFIG, "--set", *heads], env),
        "plan": error_line([args.tessera, "plan", CONFIG, "--world", "3", *cluster, "--set", *heads], env),
        "python": error_line([sys.executable, "-c", PY_TRAINER, CONFIG, *heads], env),
    }, f"{CONFIG}: model.num_attention_heads = 4: must be divisible by parallel.tensor_model_parallel_size = 3")

    batch = ["train.global_batch_size=12"]
    mpirun = [args.mpirun, "-np", "2", *MPI_FLAGS]
    check_same("global batch 12 on dp 2 x micro batch 4", {
        "train": error_line([*mpirun, args.tessera, "train", CONFIG, "--set", *batch], env),
        "plan": error_line([args.tessera, "plan", CONFIG, "--world", "2", "--config-layout", *cluster, "--set", *batch],
                           env),
        "python": error_line([*mpirun, sys.executable, "-c", PY_TRAINER, CONFIG, *batch], env),
    }, f"{CONFIG}: train.global_batch_size = 12: must be divisible by micro_batch_size * data_parallel_size")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
