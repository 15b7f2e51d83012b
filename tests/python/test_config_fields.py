"""Every config field is a Python attribute: tessera.Config's fields come from the config schema
(launcher/config_schema.cc via python/py_config.cc), so a field the YAML accepts but Python
cannot reach, read or write back fails here.

    PYTHONPATH=build/python python3 tests/python/test_config_fields.py

For every key of tessera.config_keys() (the schema's): the dotted attribute path reads, its
value written back leaves config.to_yaml() unchanged, and its section lists it in dir(). Then
a few writes reach the config the C++ side sees (to_yaml). Single process, no MPI, < 1 s.
Exits 77 (skipped) when the module cannot be imported. Run from the source root.
"""
import sys


def main():
    try:
        import tessera
    except ImportError as error:
        print(f"skipped: the tessera module is not available ({error})")
        return 77
    config = tessera.Config.from_yaml("configs/tests/gpt_tiny.yaml", ["checkpoint.dir=runs/x"])
    before = config.to_yaml()
    keys = tessera.config_keys()
    assert len(keys) > 40, keys
    missing = []
    for key in keys:
        *sections, leaf = key.split(".")
        owner = config
        try:
            for name in sections:
                owner = getattr(owner, name)
            value = getattr(owner, leaf)
            setattr(owner, leaf, value)
        except (AttributeError, tessera.Error) as error:
            missing.append(f"{key}: {error}")
            continue
        if leaf not in dir(owner):
            missing.append(f"{key}: not in dir() of its section")
    if missing:
        sys.exit("FAIL: config fields Python cannot reach or write back:\n  " + "\n  ".join(missing))
    if config.to_yaml() != before:
        sys.exit("FAIL: writing every field back changed the config")

    config.train.optimizer.lr = 3e-4
    config.parallel.partition = [1, 3]
    config.model.vocab = "bytes"
    config.log.trace = ""
    after = config.to_yaml()
    for expected in ("lr: 0.0003", "partition: [1, 3]", "vocab: bytes", "trace: null"):
        if expected not in after:
            sys.exit(f"FAIL: {expected!r} not in the config after writing it from Python:\n{after}")
    try:
        config.train.max_stepz = 3
        sys.exit("FAIL: an unknown field was accepted")
    except AttributeError as error:
        assert "did you mean 'train.max_steps'" in str(error), error
    print(f"ok: {len(keys)} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
