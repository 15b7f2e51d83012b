"""Tests the Python bindings (`import tessera`) in a 2-rank job driven from Python.

Two modes:
  test_bindings.py --tessera BIN --out DIR [--mpirun MPIRUN] [--np 2]
      the driver (what CTest runs; no MPI in this process): exits 77 (skipped) when the module
      cannot be imported; runs `mpirun -np 2 BIN train` on the config with log.metrics for the
      reference losses, then `mpirun -np 2 python3 test_bindings.py --worker --out DIR`.
      (The CLI cannot be started from inside an MPI rank, hence the driver.)
  mpirun -np 2 python3 test_bindings.py --worker --out DIR
      the checks, on every rank: 10 steps whose losses decrease and equal the CLI's (relative
      1e-5), parameters() as zero-copy numpy views of the right shapes, evaluate/save/resume,
      the callbacks (on_step, on_eval, on_checkpoint), forward_backward + optimizer_step,
      plan(), and errors as tessera.InputError (a subclass of tessera.Error) with the message.
Run from the source root (the config's data path is relative to it), PYTHONPATH = the
module's directory (build/python).
"""
import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

CONFIG = "configs/tests/gpt_tiny.yaml"
STEPS = 10
# tp 2 x dp 1 on 2 ranks: sharded parameters. The CLI and the Python job run the same config.
OVERRIDES = [f"train.max_steps={STEPS}", "parallel.tensor_model_parallel_size=2", "train.eval_iters=2"]
MPI_FLAGS = ["--oversubscribe", "--allow-run-as-root", "--bind-to", "none"]


def driver(args):
    try:
        import numpy  # noqa: F401
        import tessera  # noqa: F401  (no MPI until a Trainer is made)
    except ImportError as error:
        print(f"skipped: numpy or the tessera module is not available ({error})")
        return 77
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "cli_metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1")
    cli = [args.mpirun, "-np", str(args.np), *MPI_FLAGS, args.tessera, "train", CONFIG, "--set", *OVERRIDES,
           f"log.metrics={metrics}"]
    print("+", " ".join(cli), flush=True)
    subprocess.run(cli, check=True, env=env)
    worker = [args.mpirun, "-np", str(args.np), *MPI_FLAGS, sys.executable, os.path.abspath(__file__), "--worker",
              "--out", str(out)]
    print("+", " ".join(worker), flush=True)
    return subprocess.run(worker, env=env).returncode


def worker(args):
    import numpy as np
    import tessera

    out = Path(args.out)
    # Errors: bad configs raise tessera.InputError (a tessera.Error) with the loader's message.
    try:
        tessera.Config.from_yaml(CONFIG, ["model.hidden_size=30"])
        raise AssertionError("hidden_size 30 with 4 heads was accepted")
    except tessera.InputError as error:
        assert isinstance(error, tessera.Error) and "hidden_size" in str(error), str(error)
    try:
        tessera.Config.from_yaml("configs/tests/no_such_config.yaml")
        raise AssertionError("a missing config file was accepted")
    except tessera.InputError as error:
        assert "no_such_config.yaml" in str(error), str(error)
    assert issubclass(tessera.InputError, tessera.Error) and issubclass(tessera.Error, Exception)

    config = tessera.Config.from_yaml(CONFIG, OVERRIDES)
    assert config.train.max_steps == STEPS and config.parallel.tensor_model_parallel_size == 2
    assert "tensor_model_parallel_size: 2" in config.to_yaml()

    # A layout that does not fit the world: InputError on every rank, before any collective.
    bad = tessera.Config.from_yaml(CONFIG, OVERRIDES + ["parallel.tensor_model_parallel_size=4"])
    try:
        tessera.Trainer(bad)
        raise AssertionError("tp 4 on 2 ranks was accepted")
    except tessera.InputError as error:
        assert "4" in str(error), str(error)

    plan = tessera.plan(config, 2)
    assert plan["dp"] * plan["tp"] * plan["pp"] == 2, plan
    assert isinstance(plan["overrides"], list) and plan["predicted"]["step_time_s"] > 0, plan

    config.checkpoint.dir = str(out / f"checkpoints_np{args_np()}")
    seen = {"step": [], "eval": [], "checkpoint": []}
    trainer = tessera.Trainer(config, on_step=seen["step"].append,
                              on_eval=lambda step, val: seen["eval"].append((step, val)),
                              on_checkpoint=lambda step, path: seen["checkpoint"].append((step, path)))
    assert trainer.world_size == 2 and trainer.rank in (0, 1)
    params = trainer.parameters()
    shapes = trainer.parameter_shapes()
    assert params and sorted(params) == sorted(shapes)
    sharded = 0
    for name, array in params.items():
        assert isinstance(array, np.ndarray) and array.dtype == np.float32, (name, array.dtype)
        assert array.shape == tuple(shapes[name]["local_shape"]), (name, array.shape, shapes[name])
        sharded += array.shape != tuple(shapes[name]["global_shape"])
    assert sharded > 0, "tp 2 sharded no parameter"
    # Views, not copies: two calls see the same memory, and training updates it in place.
    name = max(params, key=lambda n: params[n].size)
    again = trainer.parameters()[name]
    assert np.shares_memory(params[name], again)
    assert params[name].__array_interface__["data"][0] == again.__array_interface__["data"][0]
    before = params[name].copy()

    losses = []
    for _ in range(STEPS):
        m = trainer.step()
        assert set(m) == {"step", "loss", "lr", "grad_norm", "step_ms", "skipped"}, m
        assert m["step"] == len(losses) + 1 and math.isfinite(m["loss"]), m
        losses.append(m["loss"])
    assert not np.array_equal(before, params[name]), "the view did not see the optimizer's update"
    assert losses[-1] < losses[0], losses
    assert [m["loss"] for m in seen["step"]] == losses, seen["step"]

    cli = {}
    with open(out / "cli_metrics.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                cli[record["step"]] = record["loss"]
    assert sorted(cli) == list(range(1, STEPS + 1)), sorted(cli)
    for step, loss in enumerate(losses, start=1):
        assert abs(loss - cli[step]) <= 1e-5 * abs(cli[step]), (step, loss, cli[step])

    val = trainer.evaluate()
    assert math.isfinite(val) and val > 0, val
    assert seen["eval"] == [(STEPS, val)], seen["eval"]
    step_dir = trainer.save()
    assert seen["checkpoint"] == [(STEPS, step_dir)] and Path(step_dir).is_dir(), (seen["checkpoint"], step_dir)
    snapshot = params[name].copy()
    trainer.step()
    assert trainer.resume() is True and trainer.current_step == STEPS
    assert np.array_equal(params[name], snapshot), "resume() did not restore the weights in place"

    # The step in two halves is the same step as step(): the resumed trainer repeats step 11.
    repeated = seen["step"][-1]
    loss = trainer.forward_backward()
    m = trainer.optimizer_step()
    assert m["step"] == STEPS + 1 and m["loss"] == loss == repeated["loss"], (m, loss, repeated)
    assert m["grad_norm"] == repeated["grad_norm"], (m, repeated)

    if trainer.rank == 0:
        print("losses:", " ".join(f"{x:.6f}" for x in losses))
        print(f"val loss {val:.4f}; plan {plan['label']}; {len(params)} parameters, {sharded} sharded")
        print("python bindings: all checks passed")
    return 0


def args_np():
    return os.environ.get("OMPI_COMM_WORLD_SIZE", "1")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--tessera", help="the tessera executable (driver)")
    parser.add_argument("--mpirun", default="mpirun")
    parser.add_argument("--np", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    return worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    sys.exit(main())
