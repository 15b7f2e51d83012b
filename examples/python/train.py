"""A research loop driving Tessera from Python.

    PYTHONPATH=build/python mpirun -np 2 python3 examples/python/train.py [--set key=value ...]

(from the source root; as root add --allow-run-as-root, on few cores --oversubscribe). Every
rank runs this script; the Trainer is collective, so every rank calls step() in step. Rank 0
prints the metrics and looks at a weight matrix through numpy (a view of this rank's shard:
no copy, and it follows the optimizer's updates).
"""
import argparse
import sys

import numpy as np

import tessera


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tests/gpt_tiny.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides: key=value")
    args = parser.parse_args()

    try:
        config = tessera.Config.from_yaml(args.config, args.overrides + [f"train.max_steps={args.steps}"])
    except tessera.InputError as error:  # one line naming the file, key and rule
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    trainer = tessera.Trainer(config)
    main_rank = trainer.rank == 0
    if main_rank:
        best = tessera.plan(config, trainer.world_size)
        print(f"{trainer.world_size} ranks; the planner's best layout here: {best['label']} "
              f"({best['predicted']['step_time_s'] * 1e3:.2f} ms/step predicted)")

    params = trainer.parameters()  # name -> numpy view of this rank's shard
    name = max(params, key=lambda n: params[n].size)
    weights = params[name]
    start = weights.copy()
    for _ in range(args.steps):
        m = trainer.step()
        if main_rank:
            print(f"step {m['step']:3d} | loss {m['loss']:.4f} | lr {m['lr']:.2e} | "
                  f"gnorm {m['grad_norm']:.2f} | {m['step_ms']:.1f} ms")
    if main_rank:
        moved = np.linalg.norm(weights - start) / np.linalg.norm(start)
        print(f"{name}: local shard {weights.shape} of {tuple(trainer.parameter_shapes()[name]['global_shape'])}, "
              f"moved {moved:.2%} in {args.steps} steps, mean {weights.mean():+.5f}, std {weights.std():.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
