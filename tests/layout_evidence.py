"""Checks that a `tessera train` run ran the layout it was asked for, from its own output: the
banner (world = dp x tp x pp; schedule, virtual stages, microbatches, sp, zero, recompute), the
optimizer-state line (ZeRO-1 sharding), the measured microbatches in flight per rank (which the
pipeline schedule decides) and the metrics' communication fields (tp and dp traffic).

The in-flight counts are derived here from the schedules' definitions (partitioner/schedule.h),
not from the runtime: rank r is pipeline stage s = r // (tp * dp) (Megatron order: tp ranks
adjacent, then dp, then pp), m microbatches per rank, and
  pp 1         1 (each microbatch's backward follows its forward)
  GPipe        m (all forwards first)
  1F1B         min(p - s, m) (warm-up of p - s - 1 forwards, then one forward before each backward)
  interleaved  m * v when m == p (all forwards first), else
               min((p - s - 1) * 2 + (v - 1) * p + 1, m * v) microbatch-chunks.
Used by check_invariance.py; standard library only."""
import re


def requested(np, overrides):
    """The layout asked for by `--set` overrides (defaults: the schema's) on np ranks."""
    sets = dict(o.split("=", 1) for o in overrides if "=" in o)
    tp = int(sets.get("parallel.tensor_model_parallel_size", 1))
    pp = int(sets.get("parallel.pipeline_model_parallel_size", 1))
    dp = int(sets.get("parallel.data_parallel_size", np // (tp * pp)))
    return {
        "world": np, "dp": dp, "tp": tp, "pp": pp,
        "schedule": sets.get("parallel.schedule", "1f1b") if pp > 1 else "none (pp 1)",
        "v": int(sets.get("parallel.virtual_stages", 1)),
        "sp": "on" if sets.get("parallel.sequence_parallel", "false") == "true" else "off",
        "zero": int(sets.get("parallel.zero_stage", 0)),
        "recompute": sets.get("parallel.recompute", "none"),
        "sync": sets.get("parallel.data_parallel_sync", "allreduce"),
    }


def expected_in_flight(want, m):
    """Microbatches (or microbatch-chunks) in flight at the peak, per world rank."""
    counts = []
    for rank in range(want["world"]):
        s, p, v = rank // (want["tp"] * want["dp"]), want["pp"], want["v"]
        if p == 1:
            counts.append(1)
        elif want["schedule"] == "gpipe":
            counts.append(m)
        elif want["schedule"] == "1f1b":
            counts.append(min(p - s, m))
        elif m == p:
            counts.append(m * v)
        else:
            counts.append(min((p - s - 1) * 2 + (v - 1) * p + 1, m * v))
    return counts


def check(want, output, last_metrics):
    """Problems (empty when the run shows the requested layout everywhere)."""
    problems = []
    banner = re.search(r"world (\d+) = dp (\d+) x tp (\d+) x pp (\d+)", output)
    got = tuple(int(x) for x in banner.groups()) if banner else None
    if got != (want["world"], want["dp"], want["tp"], want["pp"]):
        problems.append(f"banner layout {got}, asked for world/dp/tp/pp "
                        f"{(want['world'], want['dp'], want['tp'], want['pp'])}")
    layout = re.search(r"layout +schedule (.+?), v (\d+), (\d+) microbatch(?:es)? of (\d+) per rank, sp (on|off), "
                       r"zero (\d), recompute (\w+)", output)
    batch = re.search(r"global batch (\d+) x", output)
    if not layout or not batch:
        return problems + ["no layout line or global batch in the banner"]
    schedule, v, m, micro, sp, zero, recompute = layout.groups()
    shown = {"schedule": schedule, "v": int(v), "sp": sp, "zero": int(zero), "recompute": recompute}
    for key, value in shown.items():
        if value != want[key]:
            problems.append(f"banner {key} {value!r}, asked for {want[key]!r}")
    m, micro = int(m), int(micro)
    if m * micro * want["dp"] != int(batch.group(1)):
        problems.append(f"{m} microbatches of {micro} on each of dp {want['dp']} is not the global batch {batch.group(1)}")
    flight = re.search(r"microbatches in flight per rank: (.+)", output)
    counts = [int(part.split("/")[1]) for part in flight.group(1).split(", ")] if flight else None
    # One process prints no per-rank table.
    if want["world"] > 1 and counts != expected_in_flight(want, m):
        problems.append(f"microbatches in flight per rank {counts}, the schedule gives {expected_in_flight(want, m)}")
    if want["sync"] != "allreduce":
        # Local SGD / DiLoCo: no per-step gradient reduction, and ZeRO-1 shards the outer state.
        if f"dp sync {want['sync']}" not in output:
            problems.append(f"banner does not name dp sync {want['sync']}")
        if ("tp_comm_ms" in last_metrics) != (want["tp"] > 1):
            problems.append(f"metrics {'have' if 'tp_comm_ms' in last_metrics else 'lack'} tp_comm_ms (tp {want['tp']})")
        return problems
    sharded = f"(ZeRO-{want['zero']} sharded over dp {want['dp']})" in output
    if sharded != (want["zero"] >= 1 and want["dp"] > 1):
        problems.append(f"optimizer-state line {'names' if sharded else 'lacks'} ZeRO-{want['zero']} sharding over "
                        f"dp {want['dp']}")
    for key, present in (("tp_comm_ms", want["tp"] > 1), ("grad_comm_exposed_ms", want["dp"] > 1)):
        if (key in last_metrics) != present:
            problems.append(f"metrics {'have' if key in last_metrics else 'lack'} {key} (tp {want['tp']}, dp {want['dp']})")
    return problems
