"""Time the count + recency features of :class:`riskmodel.FeatureBuilder` against plain pandas
and polars, on every shape of event log a user brings.

Usage::

    python benchmarks/bench_features.py --repeat 3                       # every case below
    python benchmarks/bench_features.py --case nightly/db_extract --scale 0.1 --repeat 1  # quick
    python benchmarks/bench_features.py --profile --case nightly/db_extract   # stage profile of ours

Cases (scenario/shape; ``--scale`` multiplies the number of disputes):

* scenario ``nightly``: 1M disputes, ~10M events, one cutoff per dispute at the end of the
  period; ``training``: 100k disputes, ~1M events, 12 monthly cutoffs per dispute.
* shapes: ``db_extract`` (shuffled rows, int64 ids, categorical kinds), ``simulator``
  (time-sorted rows, 8-character Arrow string ids and kinds), ``csv_case_numbers`` (shuffled
  rows, 18-character case numbers and kinds as Python objects, as ``pd.read_csv(dtype=object)``
  gives them: one object per distinct string),
  ``warehouse`` (rows sorted by entity then time, int64 ids, Arrow string kinds).

Targets (issue 18): on every nightly shape ``transform`` >= 4x pandas and >= 2x polars,
``fit`` <= a quarter of a ``transform``, peak extra memory <= 2 GB; training >= 4x pandas
and >= 2x polars.

What is timed. Ours: ``FeatureBuilder(families=("counts", "recency")).transform(events,
cutoffs)`` from the raw frames (validation, sorting and factorizing inside), and ``fit``
timed on its own. pandas: merge the cutoffs onto the events, keep ``time < as_of``,
``groupby().size().unstack()`` per window, ``groupby`` max/min for recency. polars: the same
from polars frames of the same data (made before the timing, as a polars user has them):
join, filter, conditional sums and maxima in one ``group_by``. Every run is a fresh
``spawn`` subprocess that generates the same data; the three outputs are compared column by
column on the first run.
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


SHAPES = ("db_extract", "simulator", "csv_case_numbers", "warehouse")
CASES = [("nightly", s) for s in SHAPES] + [("training", "db_extract"), ("training", "simulator")]
CASE_NUMBER_FORMAT = "1101052023{:08d}"  # 18-character case numbers


def make_data(n_disputes: int, n_cutoffs: int, seed: int = 0, shape: str = "simulator"):
    """Events and cutoffs of one shape (see the module docstring), all vectorised; the
    same values in every shape."""
    rng = np.random.default_rng(seed)
    n_events = n_disputes * EVENTS_PER_DISPUTE
    if shape in ("db_extract", "warehouse"):
        ids = pd.array(np.int64(10**12) + np.arange(n_disputes, dtype=np.int64) * 7919)
    else:
        id_format = CASE_NUMBER_FORMAT if shape == "csv_case_numbers" else \
            os.environ.get(ID_FORMAT_ENV, DEFAULT_ID_FORMAT)
        ids = pd.array([id_format.format(i) for i in range(n_disputes)],
                       dtype=object if shape == "csv_case_numbers" else "str")
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
    if shape == "db_extract":
        events["kind"] = events["kind"].astype("category")
    elif shape == "csv_case_numbers":  # as pd.read_csv(dtype=object) gives: one object per distinct string
        id_objects = np.asarray(ids, dtype=object)
        events["dispute_id"] = pd.Series(id_objects[owner], dtype=object)
        events["kind"] = pd.Series(np.asarray(KINDS, dtype=object)[kind_codes], dtype=object)
        cutoffs["dispute_id"] = pd.Series(id_objects[np.repeat(np.arange(n_disputes), n_cutoffs)], dtype=object)
    if shape in ("db_extract", "csv_case_numbers"):
        events = events.take(rng.permutation(len(events))).reset_index(drop=True)
    elif shape == "warehouse":
        events = events.sort_values(["dispute_id", "time"], kind="stable").reset_index(drop=True)
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


def setup_polars(events: pd.DataFrame, cutoffs: pd.DataFrame):
    import polars as pl

    return pl.from_pandas(events), pl.from_pandas(cutoffs)


def run_polars(frames) -> pd.DataFrame:
    """Plain polars: join, filter ``time < as_of``, conditional sums and maxima per cutoff."""
    import polars as pl

    events, cutoffs = frames
    cut = cutoffs.with_row_index("row")
    joined = events.join(cut, on="dispute_id", how="inner").filter(pl.col("time") < pl.col("as_of"))
    age = pl.col("as_of") - pl.col("time")
    kind = pl.col("kind").cast(pl.String)
    aggs = []
    for w in list(WINDOWS) + ["all"]:
        in_w = pl.col("time").is_not_null() if w == "all" else age <= pl.duration(days=int(pd.Timedelta(w).days))
        aggs.append(in_w.sum().alias(f"count_all_{w}"))
        aggs += [(in_w & (kind == k)).sum().alias(f"count_{k}_{w}") for k in KINDS]
    aggs.append(pl.col("time").max().alias("_last"))
    aggs.append(pl.col("time").min().alias("_first"))
    aggs += [pl.col("time").filter(kind == k).max().alias(f"_last_{k}") for k in KINDS]
    per_row = joined.group_by("row").agg(aggs)
    out = cut.select("row", "as_of").join(per_row, on="row", how="left").sort("row")
    day = 86_400_000_000_000
    days = lambda col: ((pl.col("as_of") - pl.col(col)).dt.total_nanoseconds() / day)  # noqa: E731
    out = out.with_columns(
        *[pl.col(f"count_all_{w}").fill_null(0) for w in list(WINDOWS) + ["all"]],
        *[pl.col(f"count_{k}_{w}").fill_null(0) for w in list(WINDOWS) + ["all"] for k in KINDS],
        *[pl.lit(0).alias(f"count_other_{w}") for w in list(WINDOWS) + ["all"]],
        days("_last").alias("days_since_last_event"),
        days("_first").alias("days_since_first_event"),
        *[days(f"_last_{k}").alias(f"days_since_last_{k}") for k in KINDS],
        pl.lit(None, dtype=pl.Float64).alias("days_since_last_other"),
    )
    return out.select(feature_names()).cast(pl.Float32).to_pandas()


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


IMPLS = ("ours", "pandas", "polars")


def worker(impl: str, n_disputes: int, n_cutoffs: int, seed: int, dump: str | None, shape: str) -> dict:
    events, cutoffs = make_data(n_disputes, n_cutoffs, seed, shape)
    fit_seconds = None
    if impl == "ours":
        import riskmodel  # noqa: F401 - the import is not part of fit

        began = time.perf_counter()
        builder = setup_ours(events)
        fit_seconds = time.perf_counter() - began
    frames = setup_polars(events, cutoffs) if impl == "polars" else None
    gc.collect()
    with PeakMemory() as mem:
        began = time.perf_counter()
        if impl == "ours":
            result = run_ours(builder, events, cutoffs)
        elif impl == "pandas":
            result = run_pandas(events, cutoffs)
        else:
            result = run_polars(frames)
        seconds = time.perf_counter() - began
    if dump:
        np.save(dump, result[feature_names()].to_numpy(np.float32))
    return {
        "seconds": seconds,
        "fit_seconds": fit_seconds,
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


def run_case(name: str, shape: str, scale: float, repeat: int, seed: int) -> dict:
    base_disputes, n_cutoffs, *_ = SCENARIOS[name]
    n_disputes = max(100, int(base_disputes * scale))
    results: dict[str, list[dict]] = {impl: [] for impl in IMPLS}
    with tempfile.TemporaryDirectory() as tmp:
        dumps = {impl: str(Path(tmp) / f"{impl}.npy") for impl in IMPLS}
        for r in range(repeat):
            for impl in IMPLS:  # alternate, so drift hits all equally
                res = run_in_fresh_process(impl, n_disputes, n_cutoffs, seed, dumps[impl] if r == 0 else None,
                                           shape)
                results[impl].append(res)
                fit = f"  fit {res['fit_seconds']:.2f} s" if res["fit_seconds"] is not None else ""
                print(f"  [{name}/{shape}] run {r + 1}/{repeat} {impl:<6} {res['seconds']:7.2f} s  "
                      f"peak +{res['increment_mb']:7.0f} MB{fit}", flush=True)
        ours = np.load(dumps["ours"])
        compare(ours, np.load(dumps["pandas"]))
        compare(ours, np.load(dumps["polars"]))
    med = {impl: {k: statistics.median(r[k] for r in runs) for k in ("seconds", "increment_mb", "peak_mb")}
           for impl, runs in results.items()}
    fit = statistics.median(r["fit_seconds"] for r in results["ours"])
    pairs = {base: sorted(b["seconds"] / o["seconds"] for o, b in zip(results["ours"], results[base]))
             for base in ("pandas", "polars")}
    first = results["ours"][0]
    return {"name": name, "shape": shape, "disputes": n_disputes, "events": first["events"],
            "cutoffs": first["cutoffs"], "med": med, "fit": fit, "pairs": pairs,
            "vs_pandas": med["pandas"]["seconds"] / med["ours"]["seconds"],
            "vs_polars": med["polars"]["seconds"] / med["ours"]["seconds"]}


def print_table(summaries: list[dict], repeat: int) -> None:
    print()
    print(f"median of {repeat} run(s) each, every run a fresh process; peak +MB = RSS high-water mark over the RSS "
          "just before the computation; values of the three checked equal")
    header = (f"{'case':<28} {'ours s':>7} {'fit s':>6} {'pandas s':>8} {'polars s':>8} {'vs pandas':>9} "
              f"{'vs polars':>9} {'fit/tr':>6} {'ours +MB':>8}  targets (4x pandas, 2x polars, fit <= 1/4, < 2 GB)")
    print(header)
    print("-" * len(header))
    for s in summaries:
        m = s["med"]
        ok = (s["vs_pandas"] >= 4 and s["vs_polars"] >= 2 and s["fit"] <= m["ours"]["seconds"] / 4
              and m["ours"]["increment_mb"] < 2048)
        print(f"{s['name'] + '/' + s['shape']:<28} {m['ours']['seconds']:7.2f} {s['fit']:6.2f} "
              f"{m['pandas']['seconds']:8.2f} {m['polars']['seconds']:8.2f} {s['vs_pandas']:8.1f}x "
              f"{s['vs_polars']:8.1f}x {s['fit'] / m['ours']['seconds']:6.2f} {m['ours']['increment_mb']:8.0f}  "
              f"{'PASS' if ok else 'FAIL'}")
        print(f"{'':<28} {s['disputes']:,} disputes, {s['events']:,} events, {s['cutoffs']:,} cutoffs; per run vs "
              f"pandas {', '.join(f'{r:.1f}' for r in s['pairs']['pandas'])}; vs polars "
              f"{', '.join(f'{r:.1f}' for r in s['pairs']['polars'])}")


def profile_stages(n_disputes: int, n_cutoffs: int, seed: int, shape: str) -> list[tuple[str, float]]:
    """Wall time of each stage of ``transform`` (replayed with riskmodel's private helpers)."""
    from riskmodel.data._schema import screen_events, validate_cutoffs
    from riskmodel.features._builder import FeatureComputation, PreparedEvents

    events, cutoffs = make_data(n_disputes, n_cutoffs, seed, shape)
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
            screened.columns, schema, screened.tz_aware,
            (screened.entity_codes, screened.entity_ids), order=screened.order,
        ),
    )  # fmt: skip
    cut = stage("validate_cutoffs", lambda: validate_cutoffs(cutoffs, schema, tz_aware=False))
    comp = stage(
        "setup: cutoff id lookup, argsort, event keys",
        lambda: FeatureComputation(builder, prepared, cut, None),
    )
    comp.kinds = stage("kind_codes: factorize kinds", comp.kind_codes)
    stage("counts + recency: window positions, per-kind tallies", comp.add_counts_and_recency)
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


def print_profile(name: str, shape: str, scale: float, seed: int) -> None:
    base_disputes, n_cutoffs, *_ = SCENARIOS[name]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_profile_child, args=(queue, max(100, int(base_disputes * scale)), n_cutoffs, seed, shape)
    )
    proc.start()
    stages = queue.get()
    proc.join()
    if "(sum of stages)" not in dict(stages):
        raise RuntimeError(stages[0][0])
    total = dict(stages)["(sum of stages)"]
    print(f"\nstage profile of ours, {name}/{shape} (scale {scale}):")
    for stage_name, seconds in stages:
        print(f"  {stage_name:<52} {seconds:8.2f} s  {100 * seconds / total:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=[f"{n}/{s}" for n, s in CASES],
                        help="scenario/shape; repeat the flag for several (default: every case)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of disputes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="only print the stage profile of ours")
    parser.add_argument("--id-format", default=DEFAULT_ID_FORMAT,
                        help="string ids of the simulator shape, as str.format of 0..n-1 (default %(default)s)")
    args = parser.parse_args(argv)
    os.environ[ID_FORMAT_ENV] = args.id_format
    cases = [tuple(c.split("/")) for c in args.case] if args.case else CASES
    if args.profile:
        for name, shape in cases:
            print_profile(name, shape, args.scale, args.seed)
        return 0
    summaries = [run_case(name, shape, args.scale, args.repeat, args.seed) for name, shape in cases]
    print_table(summaries, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
