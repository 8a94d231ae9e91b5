"""Time the count + recency features of :class:`riskmodel.FeatureBuilder` against plain pandas.

Usage::

    python benchmarks/bench_features.py --scenario both --repeat 3
    python benchmarks/bench_features.py --scenario training --scale 0.05 --repeat 1  # quick
    python benchmarks/bench_features.py --scenario nightly --id-format "1101052023{:08d}"  # 18-char ids

Scenarios (``--scale`` multiplies the number of disputes):

* ``nightly``: 1M disputes, ~10M events, one cutoff per dispute at the end of the period.
  Target: >= 8x faster than pandas, peak memory increment under 2 GB.
* ``training``: 100k disputes, ~1M events, 12 monthly cutoffs per dispute.
  Target: >= 4x faster than pandas, at most a third of its peak memory.

What is timed. Ours: ``FeatureBuilder(families=("counts", "recency")).transform(events,
cutoffs)`` from the raw DataFrames, so event and cutoff validation, sorting and factorizing
are all inside the timing (``fit`` is done before, untimed). The baseline: merge the cutoffs
onto the events on the dispute id, keep ``time < as_of``, count per (cutoff row, kind) for
each window with ``groupby().size().unstack()``, and take recency from ``groupby`` max/min.

Fairness. Every run of every implementation is a fresh ``spawn`` subprocess that generates
the same data (same seed), then measures the computation only: wall time, resident memory
just before it (baseline) and the peak resident memory during it (Linux ``VmHWM`` after
resetting it through ``/proc/self/clear_refs``; a psutil sampling thread elsewhere). Both
implementations' outputs are saved once and compared column by column.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = (
    "call", "quarrel", "mediation_failed", "mediation_success", "complaint",
    "threat", "property_damage", "fight", "injury", "criminal_case",
)  # fmt: skip
KIND_WEIGHTS = np.array([40, 20, 10, 8, 7, 5, 4, 3, 2, 1], dtype=float)
WINDOWS = ("7D", "30D", "90D", "365D")
PERIOD_START = pd.Timestamp("2021-01-01")
PERIOD_END = pd.Timestamp("2024-01-01")  # 3 years; nightly as_of
EVENTS_PER_DISPUTE = 10
DEFAULT_ID_FORMAT = "D{:07d}"  # 8-byte ids; e.g. "1101052023{:08d}" for 18-character case numbers
ID_FORMAT_ENV = "RISKMODEL_BENCH_ID_FORMAT"  # how --id-format reaches the measuring subprocesses

SCENARIOS = {
    # name: (disputes at scale 1, cutoffs per dispute, time ratio target, memory target)
    "nightly": (1_000_000, 1, 8.0, "increment < 2 GB"),
    "training": (100_000, 12, 4.0, "<= 1/3 of pandas"),
}


# --------------------------------------------------------------------------------------
# data


def make_data(n_disputes: int, n_cutoffs: int, seed: int = 0):
    """Events sorted by time (as an extract would be) and cutoffs, all vectorised."""
    rng = np.random.default_rng(seed)
    n_events = n_disputes * EVENTS_PER_DISPUTE
    id_format = os.environ.get(ID_FORMAT_ENV, DEFAULT_ID_FORMAT)  # set by --id-format
    ids = pd.array([id_format.format(i) for i in range(n_disputes)], dtype="str")
    # skewed activity: a few disputes have many events, most have a handful
    activity = rng.gamma(0.7, size=n_disputes)
    owner = rng.choice(n_disputes, size=n_events, p=activity / activity.sum())
    seconds = (PERIOD_END - PERIOD_START) // pd.Timedelta(seconds=1)
    offsets = np.sort(rng.integers(0, seconds, size=n_events))  # sorted by time
    times = PERIOD_START.as_unit("ns").asm8 + offsets.astype("timedelta64[s]").astype(
        "timedelta64[ns]"
    )
    kind_codes = rng.choice(len(KINDS), size=n_events, p=KIND_WEIGHTS / KIND_WEIGHTS.sum())
    events = pd.DataFrame(
        {
            "dispute_id": ids.take(owner),
            "time": pd.Series(times, dtype="datetime64[ns]"),
            "kind": pd.array(np.asarray(KINDS, dtype=object), dtype="str").take(kind_codes),
        }
    )
    if n_cutoffs == 1:
        as_of = np.full(n_disputes, PERIOD_END.as_unit("ns").asm8)
        cut_ids = ids
    else:  # the first of each of the last n_cutoffs months, one row per dispute and month
        months = pd.date_range(end=PERIOD_END, periods=n_cutoffs, freq="MS").as_unit("ns")
        as_of = np.tile(months.to_numpy(), n_disputes)
        cut_ids = ids.take(np.repeat(np.arange(n_disputes), n_cutoffs))
    cutoffs = pd.DataFrame(
        {"dispute_id": cut_ids, "as_of": pd.Series(as_of, dtype="datetime64[ns]")}
    )
    return events, cutoffs


def feature_names() -> list[str]:
    kinds = list(KINDS) + ["other"]
    names = []
    for w in list(WINDOWS) + ["all"]:
        names.append(f"count_all_{w}")
        names += [f"count_{k}_{w}" for k in kinds]
    names += ["days_since_last_event", "days_since_first_event"]
    names += [f"days_since_last_{k}" for k in kinds]
    return names


# --------------------------------------------------------------------------------------
# the two implementations


def setup_ours(events: pd.DataFrame):
    from riskmodel import EventSchema, FeatureBuilder

    schema = EventSchema(
        text_col=None, party_col=None, entity_categorical_cols=(), entity_time_cols=(),
        group_cols=(), closed_col=None,
    )  # fmt: skip
    return FeatureBuilder(schema=schema, windows=WINDOWS, families=("counts", "recency")).fit(
        events
    )


def run_ours(builder, events: pd.DataFrame, cutoffs: pd.DataFrame) -> pd.DataFrame:
    return builder.transform(events, cutoffs)


def run_pandas(events: pd.DataFrame, cutoffs: pd.DataFrame) -> pd.DataFrame:
    """Plain pandas: merge, mask, groupby-size-unstack per window, groupby max/min."""
    n = len(cutoffs)
    rows = pd.RangeIndex(n)
    cut = pd.DataFrame(
        {
            "row": np.arange(n),
            "dispute_id": cutoffs["dispute_id"].to_numpy(),
            "as_of": cutoffs["as_of"].to_numpy(),
        }
    )
    merged = events.merge(cut, on="dispute_id", how="inner")
    merged = merged[merged["time"] < merged["as_of"]]
    age = merged["as_of"] - merged["time"]
    out: dict[str, pd.Series] = {}
    for w in list(WINDOWS) + ["all"]:
        sub = merged if w == "all" else merged[age <= pd.Timedelta(w)]
        counts = sub.groupby(["row", "kind"]).size().unstack(fill_value=0)
        counts = counts.reindex(index=rows, columns=list(KINDS), fill_value=0)
        out[f"count_all_{w}"] = counts.sum(axis=1)
        for k in KINDS:
            out[f"count_{k}_{w}"] = counts[k]
        out[f"count_other_{w}"] = pd.Series(0, index=rows)
    as_of = cutoffs["as_of"].to_numpy()
    day = pd.Timedelta(days=1)
    by_row = merged.groupby("row")["time"]
    out["days_since_last_event"] = (as_of - by_row.max().reindex(rows)) / day
    out["days_since_first_event"] = (as_of - by_row.min().reindex(rows)) / day
    last_by_kind = merged.groupby(["row", "kind"])["time"].max().unstack()
    last_by_kind = last_by_kind.reindex(index=rows, columns=list(KINDS))
    for k in KINDS:
        out[f"days_since_last_{k}"] = (as_of - last_by_kind[k]) / day
    out["days_since_last_other"] = pd.Series(np.nan, index=rows)
    return pd.DataFrame(
        {k: v.to_numpy(dtype=np.float32) for k, v in out.items()}, index=cutoffs.index
    )


# --------------------------------------------------------------------------------------
# measurement in a fresh process


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak RSS during a block: kernel high-water mark if resettable, else psutil sampling."""

    def __enter__(self):
        gc.collect()
        self.baseline = _rss_bytes()
        self._thread = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.method = "VmHWM"
        except OSError:
            import psutil

            self.method = "psutil"
            self._peak = self.baseline
            self._stop = threading.Event()
            proc = psutil.Process()

            def sample():
                while not self._stop.wait(0.005):
                    self._peak = max(self._peak, proc.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._peak, _rss_bytes())
        else:
            with open("/proc/self/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM:"))
            self.peak = int(hwm.split()[1]) * 1024
        return False


def worker(impl: str, n_disputes: int, n_cutoffs: int, seed: int, dump: str | None) -> dict:
    events, cutoffs = make_data(n_disputes, n_cutoffs, seed)
    builder = setup_ours(events) if impl == "ours" else None
    gc.collect()
    with PeakMemory() as mem:
        began = time.perf_counter()
        result = (
            run_ours(builder, events, cutoffs) if impl == "ours" else run_pandas(events, cutoffs)
        )
        seconds = time.perf_counter() - began
    if dump:
        np.save(dump, result[feature_names()].to_numpy(np.float32))
    return {
        "seconds": seconds,
        "baseline_mb": mem.baseline / 2**20,
        "peak_mb": mem.peak / 2**20,
        "increment_mb": (mem.peak - mem.baseline) / 2**20,
        "method": mem.method,
        "events": len(events),
        "cutoffs": len(cutoffs),
    }


def _child(queue, *args):
    try:
        queue.put(("ok", worker(*args)))
    except BaseException as exc:  # report, do not hang the parent
        import traceback

        queue.put(("error", traceback.format_exc() + repr(exc)))


def run_in_fresh_process(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark worker failed:\n{payload}")
    return payload


# --------------------------------------------------------------------------------------


def compare(ours: np.ndarray, theirs: np.ndarray) -> None:
    names = feature_names()
    for i, name in enumerate(names):
        if name.startswith("count_"):
            np.testing.assert_array_equal(ours[:, i], theirs[:, i], err_msg=name)
        else:  # days: same float64 quotient cast to float32; allow one float32 ulp
            np.testing.assert_allclose(ours[:, i], theirs[:, i], rtol=2e-7, atol=0, err_msg=name)


def run_scenario(name: str, scale: float, repeat: int, seed: int) -> dict:
    base_disputes, n_cutoffs, time_target, mem_target = SCENARIOS[name]
    n_disputes = max(100, int(base_disputes * scale))
    results: dict[str, list[dict]] = {"ours": [], "pandas": []}
    with tempfile.TemporaryDirectory() as tmp:
        dumps = {impl: str(Path(tmp) / f"{impl}.npy") for impl in results}
        for r in range(repeat):
            for impl in ("ours", "pandas"):  # alternate, so drift hits both equally
                res = run_in_fresh_process(
                    impl, n_disputes, n_cutoffs, seed, dumps[impl] if r == 0 else None
                )
                results[impl].append(res)
                print(f"  [{name}] run {r + 1}/{repeat} {impl:<6} {res['seconds']:7.2f} s  "
                      f"peak +{res['increment_mb']:7.0f} MB (total {res['peak_mb']:.0f} MB, {res['method']})",
                      flush=True)  # fmt: skip
        compare(np.load(dumps["ours"]), np.load(dumps["pandas"]))
    med = {
        impl: {
            k: statistics.median(r[k] for r in runs) for k in ("seconds", "increment_mb", "peak_mb")
        }
        for impl, runs in results.items()
    }
    speedup = med["pandas"]["seconds"] / med["ours"]["seconds"]
    mem_ratio = med["ours"]["increment_mb"] / med["pandas"]["increment_mb"]
    time_ok = speedup >= time_target
    if name == "nightly":
        mem_ok = med["ours"]["increment_mb"] < 2048  # the total (data included) is printed too
    else:
        mem_ok = mem_ratio <= 1 / 3
    first = results["ours"][0]
    # each run's ratio against the pandas run right after it: the spread the median hides
    pair_speedups = sorted(p["seconds"] / o["seconds"] for o, p in zip(results["ours"], results["pandas"]))
    return {
        "name": name, "disputes": n_disputes, "events": first["events"], "cutoffs": first["cutoffs"],
        "med": med, "speedup": speedup, "mem_ratio": mem_ratio, "time_target": time_target,
        "mem_target": mem_target, "time_ok": time_ok, "mem_ok": mem_ok, "pair_speedups": pair_speedups,
    }  # fmt: skip


def print_table(summaries: list[dict], repeat: int) -> None:
    print()
    print(f"median of {repeat} run(s); peak = RSS high-water mark during the computation, "
          "+incr = over the RSS just before it (data already generated)")  # fmt: skip
    header = (f"{'scenario':<9} {'impl':<7} {'median s':>9} {'peak +MB':>9} {'peak tot MB':>11} "
              f"{'pandas/ours t':>13} {'ours/pandas mem':>15}  targets")  # fmt: skip
    print(header)
    print("-" * len(header))
    for s in summaries:
        for impl in ("ours", "pandas"):
            m = s["med"][impl]
            extra = ""
            if impl == "ours":
                extra = (f"{s['speedup']:13.1f} {s['mem_ratio']:15.2f}  "
                         f"time >= {s['time_target']:.0f}x: {'PASS' if s['time_ok'] else 'FAIL'}; "
                         f"memory {s['mem_target']}: {'PASS' if s['mem_ok'] else 'FAIL'}")  # fmt: skip
            print(f"{s['name']:<9} {impl:<7} {m['seconds']:9.2f} {m['increment_mb']:9.0f} "
                  f"{m['peak_mb']:11.0f} {extra}")  # fmt: skip
        print(f"{'':<9} ({s['disputes']:,} disputes, {s['events']:,} events, {s['cutoffs']:,} cutoffs; "
              "values identical: checked)")  # fmt: skip
        pairs = ", ".join(f"{r:.1f}x" for r in s["pair_speedups"])
        print(f"{'':<9} pandas/ours of each run and the pandas run after it, sorted: {pairs}")


def profile_stages(n_disputes: int, n_cutoffs: int, seed: int) -> list[tuple[str, float]]:
    """Wall time of each stage of ``transform`` (replayed with riskmodel's private helpers)."""
    from riskmodel.data._schema import screen_events, validate_cutoffs
    from riskmodel.features._builder import FeatureComputation, PreparedEvents

    events, cutoffs = make_data(n_disputes, n_cutoffs, seed)
    builder = setup_ours(events)
    schema = builder.schema
    stages: list[tuple[str, float]] = []

    def stage(name, func):
        began = time.perf_counter()
        result = func()
        stages.append((name, time.perf_counter() - began))
        return result

    began = time.perf_counter()
    builder.transform(events, cutoffs)
    end_to_end = time.perf_counter() - began
    screened = stage(
        "screen_events: checks, factorize ids, sort",
        lambda: screen_events(events, schema, sort_ids=False),
    )
    prepared = stage(
        "PreparedEvents: permute times",
        lambda: PreparedEvents(
            screened.valid, schema, screened.tz_aware,
            (screened.entity_codes, screened.entity_ids), order=screened.order,
        ),
    )  # fmt: skip
    cut = stage("validate_cutoffs", lambda: validate_cutoffs(cutoffs, schema, tz_aware=False))
    comp = stage(
        "setup: cutoff id lookup, argsort, event keys",
        lambda: FeatureComputation(builder, prepared, cut, None),
    )
    comp.kinds = stage("kind_codes: factorize kinds", comp.kind_codes)
    stage(
        "counts + recency: window positions, per-kind cumsum",
        lambda: comp.add_counts_and_recency(True, True),
    )
    stage(
        "DataFrame over the float32 matrix",
        lambda: pd.DataFrame(comp.matrix, columns=comp.numeric_names, copy=False),
    )
    stages.append(("(sum of stages)", sum(t for _, t in stages)))
    stages.append(("(end-to-end transform, same process)", end_to_end))
    return stages


def _profile_child(queue, *args):
    try:
        queue.put(profile_stages(*args))
    except BaseException:  # report, do not hang the parent
        import traceback

        queue.put([("profile failed:\n" + traceback.format_exc(), float("nan"))])


def print_profile(name: str, scale: float, seed: int) -> None:
    base_disputes, n_cutoffs, *_ = SCENARIOS[name]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_profile_child, args=(queue, max(100, int(base_disputes * scale)), n_cutoffs, seed)
    )
    proc.start()
    stages = queue.get()
    proc.join()
    if "(sum of stages)" not in dict(stages):
        raise RuntimeError(stages[0][0])
    total = dict(stages)["(sum of stages)"]
    print(f"\nstage profile of ours, {name} (scale {scale}):")
    for stage_name, seconds in stages:
        print(f"  {stage_name:<52} {seconds:8.2f} s  {100 * seconds / total:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("nightly", "training", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of disputes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile", action="store_true", help="only print the stage profile of ours"
    )
    parser.add_argument(
        "--id-format", default=DEFAULT_ID_FORMAT,
        help="dispute ids as str.format of 0..n-1 (default %(default)s, 8 bytes)",
    )
    args = parser.parse_args(argv)
    os.environ[ID_FORMAT_ENV] = args.id_format
    names = ("nightly", "training") if args.scenario == "both" else (args.scenario,)
    if args.profile:
        for name in names:
            print_profile(name, args.scale, args.seed)
        return 0
    summaries = [run_scenario(n, args.scale, args.repeat, args.seed) for n in names]
    print_table(summaries, args.repeat)
    return 0 if all(s["time_ok"] and s["mem_ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
