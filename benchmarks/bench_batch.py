"""Benchmark ``score_batch`` on a large simulated event log.

Simulates ``--disputes`` disputes (1M ~ 10M events) to parquet, trains a model on a small
simulation, times ``score_batch`` ``--repeats`` times and prints disputes/s, the time
split by stage, peak RSS (of a fresh subprocess per run) and the ratio of the total time
to LightGBM's own ``booster.predict`` on the same feature matrix (the baseline, timed in
the same run).

With ``--engine spark`` the same input is then scored on Spark (``--master``, default
``local-cluster[2,1,1024]``: two executor JVMs with their own Python workers), in a
fresh process per run, against the local engine's runs above as the baseline: wall time,
disputes per second, the driver's and each executor's peak memory (the executor JVM plus
its Python workers, sampled from ``/proc`` every half second), and whether the outputs are
identical.

``--shape db_extract`` scores the same city as a database extract (int64 ids, categorical
kinds, rows shuffled): issue 18's ``riskmodel score`` target is 1M disputes in <= 60 s there.

The reasons stage (exact SHAP of the flagged cases) costs in proportion to the model's trees.
The default model, trained on ``--train-disputes 3000``, has under 1,000 positives, so it
averages the trees of 5 seeds (about 590 trees); one trained on 20,000 disputes, the size of
``experiments/baseline.toml``, has one seed (about 110 trees). Give both figures.

    .venv/bin/python benchmarks/bench_batch.py --disputes 100000
    .venv/bin/python benchmarks/bench_batch.py --disputes 1000000 --shape db_extract --repeats 3
    .venv/bin/python benchmarks/bench_batch.py --disputes 1000000 --engine spark --repeats 1

``--against CHECKOUT`` times another checkout's night (say ``git worktree add ../base HEAD~1``)
in alternation with this one's, on the same input and model (``--model DIR`` reuses a saved
one), and says whether their outputs are identical: the A/B check of a change to the night.

    .venv/bin/python benchmarks/bench_batch.py --disputes 1000000 --shape db_extract --workdir /tmp/bb \\
        --model /tmp/bb20k/model --against ../base
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

_RUN = textwrap.dedent(
    """
    import json, sys
    from riskmodel.batch._job import score_batch
    m = score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of=sys.argv[4],
                    out=sys.argv[5], chunk_disputes=int(sys.argv[6]), engine=sys.argv[7],
                    master=sys.argv[8] or None, overwrite=True)  # its own scratch folders, rerun
    # VmHWM is this process's own high-water mark (ru_maxrss survives exec: it would
    # report the parent's peak)
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    m["peak_rss_mb"] = int(hwm.split()[1]) / 1024
    print(json.dumps(m))
    """
)


def _score_in_subprocess(model_dir, events, entities, as_of, out, chunk_disputes, engine="local",
                         master=None, tree=None) -> dict:
    """``score_batch`` in a fresh interpreter; its manifest plus ``peak_rss_mb`` (the
    driver's Python process) and, with ``engine="spark"``, ``memory`` (:class:`_Memory`).
    ``tree``: a checkout whose ``riskmodel`` runs instead of this one's."""
    env = None if tree is None else dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(model_dir), str(events), str(entities), as_of, str(out),
         str(chunk_disputes), engine, master or ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tree,
    )
    memory = _Memory(proc.pid) if engine == "spark" else None
    stdout, stderr = proc.communicate()
    if memory is not None:
        memory.stop()
    if proc.returncode:
        sys.exit(stderr)
    manifest = json.loads(stdout.strip().splitlines()[-1])
    if memory is not None:
        manifest["memory"] = memory.peaks()
    return manifest


class _Memory(threading.Thread):
    """Peak resident memory of a Spark run's processes, from ``/proc`` (Linux): each
    executor (its JVM, ``CoarseGrainedExecutorBackend``, plus its Python daemon and
    workers) and the driver (its Python process plus its JVM), sampled every half second."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.done = root, threading.Event()
        self.executors: dict[str, dict] = {}
        self.driver = 0
        self.start()

    @staticmethod
    def _processes() -> dict[int, tuple[int, int, str]]:
        """pid -> (parent pid, resident kB, command line)."""
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/status") as f:
                    rss = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            out[int(entry)] = (ppid, rss, cmd)
        return out

    def _sample(self) -> None:
        procs = self._processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)

        def subtree(pid: int, stop=lambda p: False) -> list[int]:
            found, todo = [], [pid]
            while todo:
                p = todo.pop()
                found.append(p)
                todo.extend(c for c in children.get(p, []) if not stop(c))
            return found

        is_executor = lambda p: "CoarseGrainedExecutorBackend" in procs[p][2]  # noqa: E731
        tree = subtree(self.root)
        for pid in tree:
            if is_executor(pid):
                eid = re.search(r"--executor-id (\S+)", procs[pid][2])
                eid = eid.group(1) if eid else str(pid)
                jvm = procs[pid][1]
                python = sum(procs[p][1] for p in subtree(pid) if p != pid)
                peak = self.executors.setdefault(eid, {"total": 0, "jvm": 0, "python": 0})
                if jvm + python > peak["total"]:
                    peak.update(total=jvm + python, jvm=jvm, python=python)
        self.driver = max(self.driver, sum(procs[p][1] for p in subtree(self.root, is_executor) if p in procs))

    def run(self) -> None:
        while not self.done.wait(0.5):
            self._sample()

    def stop(self) -> None:
        self.done.set()
        self.join()

    def peaks(self) -> dict:
        """MB: ``driver`` (Python and JVM) and, per executor id, ``total`` / ``jvm`` / ``python``."""
        mb = lambda kb: round(kb / 1024)  # noqa: E731
        return {"driver": mb(self.driver),
                "executors": {e: {k: mb(v) for k, v in p.items()} for e, p in sorted(self.executors.items())}}


SHAPES = ("simulator", "db_extract")


def _as_db_extract(events, entities, id_col: str, kind_col: str, seed: int = 0):
    """The same city as a database extract: int64 ids (the entities' too), categorical
    kinds, rows in no order."""
    import numpy as np
    import pandas as pd

    number = pd.Index(entities[id_col]).get_indexer
    events, entities = events.copy(), entities.copy()
    events[id_col] = (number(events[id_col]) + 7_000_000_000).astype(np.int64)
    entities[id_col] = (number(entities[id_col]) + 7_000_000_000).astype(np.int64)
    events[kind_col] = events[kind_col].astype("category")
    shuffled = np.random.default_rng(seed).permutation(len(events))
    return events.iloc[shuffled].reset_index(drop=True), entities


def _simulated_input(root: Path, suffix: str, n_disputes: int, shape: str = "simulator"):
    """Events and entities of a simulated city as ``events<suffix>.parquet`` and
    ``entities<suffix>.parquet`` in ``root``, in the input ``shape`` (:data:`SHAPES`); files a
    previous run of the same size and shape left there are reused (``inputs.json`` records
    them). Returns (events, entities) frames."""
    import pandas as pd

    from riskmodel._simulate import simulate_disputes

    events_path, entities_path = root / f"events{suffix}.parquet", root / f"entities{suffix}.parquet"
    record = root / "inputs.json"
    sizes = json.loads(record.read_text()) if record.exists() else {}
    if sizes.get(suffix) == [n_disputes, shape] and events_path.exists() and entities_path.exists():
        return pd.read_parquet(events_path), pd.read_parquet(entities_path)
    sim = simulate_disputes(n_disputes, start="2022-01-01", end="2024-12-31", seed=2)
    events, entities = sim.events, sim.entities
    if shape == "db_extract":
        events, entities = _as_db_extract(events, entities, sim.schema.entity_col, sim.schema.kind_col)
    events.to_parquet(events_path, index=False, row_group_size=500_000)
    entities.to_parquet(entities_path, index=False)
    record.write_text(json.dumps({**sizes, suffix: [n_disputes, shape]}))
    return events, entities


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
    parser.add_argument("--shape", choices=SHAPES, default="simulator",
                        help="the input's shape: the simulator's (string ids, rows in time order) or a database "
                             "extract (int64 ids, categorical kinds, rows shuffled)")
    parser.add_argument("--engine", choices=["local", "spark"], default="local",
                        help="spark: also score on Spark, with the local runs as the baseline")
    parser.add_argument("--master", default="local-cluster[2,1,1024]", help="Spark master for --engine spark")
    parser.add_argument("--model", default=None,
                        help="score with this saved model folder instead of training one on --train-disputes")
    parser.add_argument("--against", default=None, metavar="CHECKOUT",
                        help="also time the night of another checkout of the project (e.g. a git worktree of the "
                             "previous commit), alternating with this one's runs: per-run ratios, stage medians "
                             "and whether the outputs are identical")
    args = parser.parse_args()

    from _snapshots import simulated_snapshots

    from riskmodel import FeatureBuilder, RiskModel, load, open_disputes
    from riskmodel.model._artifact import save_model_dir

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-batch-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.model:
        model_dir = Path(args.model)
        model = load(str(model_dir)).model
    else:
        small, ev, lab = simulated_snapshots(args.train_disputes, start="2022-01-01", end="2024-12-31", seed=1)
        model = RiskModel(schema=small.schema, features=FeatureBuilder(schema=small.schema))
        model.fit(ev, lab[~lab.censored], entities=small.entities)
        model_dir = save_model_dir(model, root / "model")
    schema = model._schema()

    t = time.perf_counter()
    events, entities = _simulated_input(root, "", args.disputes, args.shape)
    n_events = len(events)
    print(f"simulated (or reused) {args.disputes:,} disputes, {n_events:,} events in {time.perf_counter() - t:.1f}s")

    # Baseline: LightGBM's own predict on the same feature matrix (one chunk's worth at a time
    # would be the same total), timed in this run.
    cut = open_disputes(events, args.as_of, schema, entities=entities)
    X = model.transform_features(events, cut, entities=entities)
    del events, entities
    t = time.perf_counter()
    model.booster_.predict(X[model.feature_names_])
    t_lgbm = time.perf_counter() - t
    n_open = len(X)
    del X

    runs, others = [], []
    for i in range(args.repeats):
        # with --against, the two checkouts alternate which runs first
        for which in (["this", "other"] if i % 2 == 0 else ["other", "this"]) if args.against else ["this"]:
            tree = args.against if which == "other" else None
            manifest = _score_in_subprocess(model_dir, root / "events.parquet", root / "entities.parquet",
                                            args.as_of, root / (f"against{i}" if tree else f"out{i}"),
                                            args.chunk_disputes, tree=tree)
            (others if tree else runs).append(manifest)
            print(f"run {i + 1} ({which}): total {manifest['timings_s']['total']:.1f}s, "
                  f"peak RSS {manifest['peak_rss_mb']:,.0f} MB")

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
    if args.against:
        _print_against(args, root, runs, others, med)
    if args.scaling:
        small_n = args.disputes // 4
        _simulated_input(root, "4", small_n, args.shape)
        peaks = []
        for i in range(args.repeats):
            manifest = _score_in_subprocess(model_dir, root / "events4.parquet", root / "entities4.parquet",
                                            args.as_of, root / f"quarter{i}", args.chunk_disputes)
            peaks.append(manifest["peak_rss_mb"])
        small_peak = statistics.median(peaks)
        print(f"  memory scaling: {small_n:,} disputes peak {small_peak:,.0f} MB, {args.disputes:,} disputes "
              f"peak {rss:,.0f} MB: ratio {rss / small_peak:.2f} for a 4x larger input (target <= 1.3)")

    if args.engine == "spark":
        _compare_spark(args, model_dir, root, runs, med)


def _print_against(args, root: Path, runs: list[dict], others: list[dict], med: dict) -> None:
    """This checkout's nights against ``--against``'s, run pair by run pair."""
    import pandas as pd

    other_med = {k: statistics.median(r["timings_s"][k] for r in others) for k in others[0]["timings_s"]}
    ratios = [o["timings_s"]["total"] / r["timings_s"]["total"] for r, o in zip(runs, others, strict=True)]
    print(f"\nagainst {args.against}: total {other_med['total']:.1f}s (runs "
          + ", ".join(f"{o['timings_s']['total']:.1f}" for o in others) + f"), this checkout {med['total']:.1f}s; "
          f"other / this per pair: " + ", ".join(f"{x:.2f}" for x in ratios)
          + f" (median {statistics.median(ratios):.2f})")
    print("  stage medians (s), other -> this: " + ", ".join(
        f"{k} {other_med[k]:.1f} -> {med[k]:.1f}" for k in med if k != "total"))
    print(f"  peak RSS (MB), other -> this: {statistics.median(o['peak_rss_mb'] for o in others):,.0f} -> "
          f"{statistics.median(r['peak_rss_mb'] for r in runs):,.0f}")
    same = []
    for name in ("scores", "not_scored", "worklists", "station_summary", "rejects"):
        a, b = root / "out0" / f"{name}.parquet", root / "against0" / f"{name}.parquet"
        if a.exists() or b.exists():
            same.append(f"{name} {'identical' if a.exists() and b.exists() and pd.read_parquet(a).equals(pd.read_parquet(b)) else 'DIFFER'}")
    print("  outputs: " + ", ".join(same))


def _compare_spark(args, model_dir, root: Path, local_runs: list[dict], local_med: dict) -> None:
    """Score the same input on Spark; print it beside the local runs of this invocation."""
    import pandas as pd

    spark_runs = []
    for i in range(args.repeats):
        spark_runs.append(_score_in_subprocess(model_dir, root / "events.parquet", root / "entities.parquet",
                                               args.as_of, root / f"spark{i}", args.chunk_disputes, "spark",
                                               args.master))
        m = spark_runs[-1]
        print(f"spark run {i + 1}: total {m['timings_s']['total']:.1f}s (session start "
              f"{m['timings_s'].get('spark_session', 0):.1f}s), memory {m['memory']}")
    total = statistics.median(r["timings_s"]["total"] for r in spark_runs)
    session = statistics.median(r["timings_s"].get("spark_session", 0.0) for r in spark_runs)
    c = spark_runs[0]["counts"]
    same = all((pd.read_parquet(root / "spark0" / f"{n}.parquet")
                .equals(pd.read_parquet(root / "out0" / f"{n}.parquet")))
               for n in ("scores", "worklists", "station_summary", "rejects", "not_scored", "drift"))
    same = same and spark_runs[0]["counts"] == local_runs[0]["counts"]
    print(f"\nengines on the same {c['disputes_read']:,} disputes ({args.repeats} run(s) each, medians; "
          f"chunk {args.chunk_disputes:,}, {spark_runs[0]['parameters']['n_chunks']} chunks):")
    print(f"  local                 : {local_med['total']:7.1f}s, {c['disputes_read'] / local_med['total']:8,.0f} "
          f"disputes/s, peak RSS {statistics.median(r['peak_rss_mb'] for r in local_runs):,.0f} MB")
    print(f"  spark {args.master:<16}: {total:7.1f}s, {c['disputes_read'] / total:8,.0f} disputes/s "
          f"({session:.1f}s of it starting Spark); x{total / local_med['total']:.2f} the local time")
    mem = spark_runs[0]["memory"]
    print(f"    driver peak {mem['driver']:,} MB (Python + JVM); Python process alone "
          f"{spark_runs[0]['peak_rss_mb']:,.0f} MB")
    for eid, peak in mem["executors"].items():
        print(f"    executor {eid} peak {peak['total']:,} MB = JVM {peak['jvm']:,} + Python workers {peak['python']:,}")
    print(f"  outputs identical (scores, work lists, summary, rejects, not-scored, drift, counts): {same}")


if __name__ == "__main__":
    main()
