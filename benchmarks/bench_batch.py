"""Benchmark ``score_batch`` on a large simulated event log.

Simulates ``--disputes`` disputes (1M ~ 10M events) to parquet, trains a model on a small
simulation, times ``score_batch`` ``--repeats`` times and prints disputes/s, the time
split by stage, peak RSS (of a fresh subprocess per run) and the ratio of the total time
to LightGBM's own ``booster.predict`` on the same feature matrix (the baseline, timed in
the same run).

    .venv/bin/python benchmarks/bench_batch.py --disputes 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

_RUN = textwrap.dedent(
    """
    import json, sys
    from riskmodel.batch._job import score_batch
    m = score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of=sys.argv[4],
                    out=sys.argv[5], chunk_disputes=int(sys.argv[6]))
    # VmHWM is this process's own high-water mark (ru_maxrss survives exec: it would
    # report the parent's peak)
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    m["peak_rss_mb"] = int(hwm.split()[1]) / 1024
    print(json.dumps(m))
    """
)


def _score_in_subprocess(model_dir, events, entities, as_of, out, chunk_disputes) -> dict:
    """``score_batch`` in a fresh interpreter; its manifest plus ``peak_rss_mb``."""
    res = subprocess.run(
        [sys.executable, "-c", _RUN, str(model_dir), str(events), str(entities), as_of, str(out),
         str(chunk_disputes)],
        capture_output=True, text=True,
    )
    if res.returncode:
        sys.exit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _simulated_input(root: Path, suffix: str, n_disputes: int):
    """Events and entities of a simulated city as ``events<suffix>.parquet`` and
    ``entities<suffix>.parquet`` in ``root``; files a previous run of the same size left
    there are reused (``inputs.json`` records the sizes). Returns (events, entities) frames."""
    import pandas as pd

    from riskmodel._simulate import simulate_disputes

    events_path, entities_path = root / f"events{suffix}.parquet", root / f"entities{suffix}.parquet"
    record = root / "inputs.json"
    sizes = json.loads(record.read_text()) if record.exists() else {}
    if sizes.get(suffix) == n_disputes and events_path.exists() and entities_path.exists():
        return pd.read_parquet(events_path), pd.read_parquet(entities_path)
    sim = simulate_disputes(n_disputes, start="2022-01-01", end="2024-12-31", seed=2)
    sim.events.to_parquet(events_path, index=False, row_group_size=500_000)
    sim.entities.to_parquet(entities_path, index=False)
    record.write_text(json.dumps({**sizes, suffix: n_disputes}))
    return sim.events, sim.entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disputes", type=int, default=1_000_000)
    parser.add_argument("--train-disputes", type=int, default=3_000)
    parser.add_argument("--chunk-disputes", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--as-of", default="2024-06-01")
    parser.add_argument("--workdir", default=None,
                        help="folder for the data and outputs; simulated inputs found there are reused")
    parser.add_argument("--scaling", action="store_true",
                        help="also score an input 4x smaller and print the peak-memory ratio")
    args = parser.parse_args()

    from _snapshots import simulated_snapshots

    from riskmodel import FeatureBuilder, RiskModel, open_disputes
    from riskmodel.model._artifact import save_model_dir

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-batch-"))
    root.mkdir(parents=True, exist_ok=True)
    small, ev, lab = simulated_snapshots(args.train_disputes, start="2022-01-01", end="2024-12-31", seed=1)
    model = RiskModel(schema=small.schema, features=FeatureBuilder(schema=small.schema))
    model.fit(ev, lab[~lab.censored], entities=small.entities)
    model_dir = save_model_dir(model, root / "model")

    t = time.perf_counter()
    events, entities = _simulated_input(root, "", args.disputes)
    n_events = len(events)
    print(f"simulated (or reused) {args.disputes:,} disputes, {n_events:,} events in {time.perf_counter() - t:.1f}s")

    # Baseline: LightGBM's own predict on the same feature matrix (one chunk's worth at a time
    # would be the same total), timed in this run.
    cut = open_disputes(events, args.as_of, small.schema, entities=entities)
    X = model.transform_features(events, cut, entities=entities)
    del events, entities
    t = time.perf_counter()
    model.booster_.predict(X[model.feature_names_])
    t_lgbm = time.perf_counter() - t
    n_open = len(X)
    del X

    runs = []
    for i in range(args.repeats):
        runs.append(_score_in_subprocess(model_dir, root / "events.parquet", root / "entities.parquet",
                                         args.as_of, root / f"out{i}", args.chunk_disputes))
        tt = runs[-1]["timings_s"]
        print(f"run {i + 1}: total {tt['total']:.1f}s, peak RSS {runs[-1]['peak_rss_mb']:,.0f} MB")

    med = {k: statistics.median(r["timings_s"][k] for r in runs) for k in runs[0]["timings_s"]}
    rss = statistics.median(r["peak_rss_mb"] for r in runs)
    c = runs[0]["counts"]
    print(f"\n{args.disputes:,} disputes / {n_events:,} events, chunk {args.chunk_disputes:,} "
          f"({runs[0]['parameters']['n_chunks']} chunks), {args.repeats} runs, medians:")
    print(f"  total {med['total']:.1f}s = {c['disputes_read'] / med['total']:,.0f} disputes read/s, "
          f"{c['disputes_scored'] / med['total']:,.0f} open disputes scored/s ({c['disputes_scored']:,} open)")
    print("  split (s): " + ", ".join(f"{k} {v:.1f}" for k, v in med.items() if k != "total"))
    print(f"  peak RSS {rss:,.0f} MB")
    print(f"  LightGBM booster.predict on the {n_open:,} x {len(model.feature_names_)} matrix: {t_lgbm:.2f}s; "
          f"total / booster.predict = {med['total'] / max(t_lgbm, 1e-9):.0f}x")
    if args.scaling:
        small_n = args.disputes // 4
        _simulated_input(root, "4", small_n)
        peaks = []
        for i in range(args.repeats):
            manifest = _score_in_subprocess(model_dir, root / "events4.parquet", root / "entities4.parquet",
                                            args.as_of, root / f"quarter{i}", args.chunk_disputes)
            peaks.append(manifest["peak_rss_mb"])
        small_peak = statistics.median(peaks)
        print(f"  memory scaling: {small_n:,} disputes peak {small_peak:,.0f} MB, {args.disputes:,} disputes "
              f"peak {rss:,.0f} MB: ratio {rss / small_peak:.2f} for a 4x larger input (target <= 1.3)")


if __name__ == "__main__":
    main()
