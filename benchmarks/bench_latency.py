"""Latency of scoring ONE dispute (~20 events) through the predict API, after load.

Target (issue 5): p50 <= 10 ms after load, for ``riskmodel.load(uri).predict(events, as_of=...)``.

What is timed. A small model is trained and registered into a temporary sqlite MLflow store
(``riskmodel.train`` on a small simulated city, well under a minute), or ``--model URI`` uses an
existing one (``MLFLOW_TRACKING_URI`` or the local store); ``--seed-bagging 1`` trains one
LightGBM model instead of this small city's average of 5 seeds (whose SHAP reasons walk 5x
the trees), to time the engine as a city with enough positives runs it. It is loaded once, untimed, two
ways: ``riskmodel.load(uri)`` and ``mlflow.pyfunc.load_model(uri)``. Then, after
``--warmup`` calls, ``--reps`` calls score one dispute with ``--events`` events:

* ``Predictor.predict``: ``predictor.predict(events, as_of=..., entities=...)``;
* ``Predictor.predict reasons=none``: the same without SHAP reasons;
* ``pyfunc.predict``: ``pyfunc.predict(events_with_entity_columns, params={"as_of": ...})``,
  what ``mlflow models serve`` runs per request (minus HTTP and JSON).

The baseline, timed in the same run on the same dispute: LightGBM alone,
``booster.predict`` on that dispute's single feature row, as a numpy row (the trees only)
and as a one-row DataFrame (plus LightGBM's pandas conversion). Each path is timed
``--runs`` times, interleaved, so a noisy neighbour hits every path alike; the table shows
the median over runs of each run's p50, p99 and mean, and the spread of the p50s.

``--breakdown`` then wraps riskmodel's functions on the path with timers and prints the
inclusive milliseconds per prediction of each (median over runs), so a slow stage can be
named; ``--profile`` prints a cProfile of ``Predictor.predict``.

    .venv/bin/python benchmarks/bench_latency.py
    .venv/bin/python benchmarks/bench_latency.py --model models:/dispute-risk@champion --breakdown
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TARGET_P50_MS = 10.0


def train_small_model(root: Path, seed_bagging: str = "auto") -> str:
    """Train and register a small model in a fresh sqlite store under ``root``; its URI.

    ``seed_bagging``: the model's setting. On this small city ``"auto"`` averages 5 seeds'
    trees (fewer than 1,000 positives), so SHAP reasons walk 5x the trees; ``1`` grows one
    model, as a city with enough positives gets: the engine's latency without that cost.
    """
    import riskmodel as rm
    from riskmodel.lifecycle._config import load_config

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    cfg = load_config(REPO / "experiments" / "baseline.toml")
    cfg.data.n_disputes, cfg.data.seed = 4000, 3
    cfg.data.start, cfg.data.end = "2022-01-01", "2024-12-31"
    cfg.backtest.n_folds, cfg.backtest.n_bootstrap = 1, 20
    cfg.model.n_estimators = 150
    cfg.model.seed_bagging = seed_bagging if seed_bagging == "auto" else int(seed_bagging)
    t = time.perf_counter()
    result = rm.train(cfg)
    print(f"trained and registered {result.model_name} v{result.version} in {time.perf_counter() - t:.0f}s")
    return f"models:/{result.model_name}/{result.version}"


def one_dispute(predictor, n_events: int, seed: int):
    """A simulated dispute cut to ``n_events`` events, scored one day after the last one.

    The first one the model flags (red or yellow), so the timing includes the SHAP reasons
    that flagged cases get; a blue case skips them.
    """
    import riskmodel as rm

    sim = rm.simulate_disputes(1500, start="2023-01-01", end="2024-12-31", seed=seed)
    s = sim.schema
    sizes = sim.events.groupby(s.entity_col).size()
    candidates = sizes[sizes >= n_events].index[:200]
    if not len(candidates):
        sys.exit(f"no simulated dispute has {n_events} events; lower --events")
    for did in candidates:
        events = sim.events[sim.events[s.entity_col] == did].sort_values(s.time_col)
        events = events.head(n_events).reset_index(drop=True)
        as_of = events[s.time_col].max() + pd.Timedelta(days=1)
        entities = sim.entities[sim.entities[s.entities_id] == did].reset_index(drop=True)
        if predictor.predict(events, as_of=as_of, entities=entities)["tier"].iloc[0] != "blue":
            break
    return events, entities, as_of


def lightgbm_row(X, booster) -> np.ndarray:
    """``X`` as LightGBM converts a DataFrame: category codes on its vocabularies, NaN if missing."""
    X = X.copy()
    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    for col, vocab in zip(cats, booster.pandas_categorical or []):
        codes = X[col].cat.set_categories(vocab).cat.codes.to_numpy()
        X[col] = np.where(codes < 0, np.nan, codes)
    return X.to_numpy(dtype=np.float64)


def time_calls(fn, reps: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(reps)
    for i in range(reps):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out * 1e3


def summarise(samples: list[np.ndarray]) -> dict[str, float]:
    p50s = [float(np.percentile(s, 50)) for s in samples]
    return {
        "p50": statistics.median(p50s),
        "p99": statistics.median(float(np.percentile(s, 99)) for s in samples),
        "mean": statistics.median(float(s.mean()) for s in samples),
        "p50_min": min(p50s),
        "p50_max": max(p50s),
    }


# ------------------------------------------------------------------------------------------
# breakdown: wrap riskmodel functions with timers, without editing them


def _wrap_targets():
    """(label, owner, attribute) of the functions on the single-dispute path that exist now."""
    import riskmodel.data._schema as schema
    import riskmodel.features._builder as features
    import riskmodel.lifecycle._pyfunc as pyfunc
    import riskmodel.lifecycle._registry as registry
    import riskmodel.model._model as model
    import riskmodel.model._reasons as reasons
    import riskmodel.model._tiers as tiers

    targets = [
        (registry.Predictor, "predict"),
        (pyfunc, "score_all"), (pyfunc, "split_entity_columns"),
        (model.RiskModel, "predict"), (model.RiskModel, "_predict"), (model.RiskModel, "transform_features"),
        (model.RiskModel, "_features_and_matrix"), (model.RiskModel, "_score"),
        (model.RiskModel, "score_features"), (model.RiskModel, "_matrix"),
        (model.RiskModel, "_booster_predict"), (tiers.TierPolicy, "apply"),
        (reasons, "top_reasons"), (reasons.ReasonWriter, "render"),
        (features, "prepare_events"), (features.FeatureBuilder, "transform"),
        (features.FeatureBuilder, "_transform_valid_cutoffs"),
    ]
    targets += [(schema, name) for name, obj in vars(schema).items()
                if callable(obj) and getattr(obj, "__module__", "") == schema.__name__
                and name.startswith(("validate_", "split_", "screen_", "parse_"))]
    computation = getattr(features, "FeatureComputation", None)
    if computation is not None:
        targets += [(computation, name) for name, obj in vars(computation).items()
                    if callable(obj) and (name in ("__init__", "run") or not name.startswith("_"))]
    targets += [(features.PreparedEvents, name) for name, obj in vars(features.PreparedEvents).items()
                if callable(obj) and name == "__init__"]
    out = []
    for owner, name in targets:
        if hasattr(owner, name):
            prefix = owner.__name__.split(".")[-1] if isinstance(owner, type(sys)) else owner.__name__
            out.append((f"{prefix}.{name}", owner, name))
    return out


class Timers:
    """Patch functions (and every riskmodel module's reference to them) with timers."""

    def __init__(self):
        self.total = defaultdict(float)
        self.calls = defaultdict(int)
        self._undo = []

    def install(self):
        for label, owner, name in _wrap_targets():
            original = getattr(owner, name)
            wrapper = self._wrapper(label, original)
            places = [(owner, name)]
            if isinstance(owner, type(sys)):  # also `from ._x import f` copies in other modules
                for mod_name, mod in list(sys.modules.items()):
                    if mod_name.startswith("riskmodel") and mod is not owner:
                        places += [(mod, n) for n, v in vars(mod).items() if v is original]
            for place, attr in places:
                self._undo.append((place, attr, getattr(place, attr)))
                setattr(place, attr, wrapper)

    def _wrapper(self, label, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - t
                self.calls[label] += 1

        return timed

    def remove(self):
        for place, attr, original in reversed(self._undo):
            setattr(place, attr, original)
        self._undo.clear()

    def reset(self):
        self.total.clear()
        self.calls.clear()


def breakdown(fn, reps: int, warmup: int, runs: int) -> None:
    timers = Timers()
    timers.install()
    try:
        per_run = []
        for _ in range(runs):
            time_calls(fn, warmup, 0)
            timers.reset()
            time_calls(fn, reps, 0)
            per_run.append({k: (v / reps * 1e3, timers.calls[k] / reps) for k, v in timers.total.items()})
    finally:
        timers.remove()
    labels = sorted(per_run[0], key=lambda k: -statistics.median(r[k][0] for r in per_run if k in r))
    print(f"\nbreakdown of Predictor.predict (inclusive ms per prediction, median of {runs} runs; "
          "nested calls are also counted in their callers):")
    for k in labels:
        ms = statistics.median(r[k][0] for r in per_run if k in r)
        calls = per_run[0][k][1]
        print(f"  {ms:8.2f} ms  {calls:4.0f} call(s)  {k}")


# ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model URI; default: train a small one in a temp store")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--seed-bagging", default="auto",
                        help="the trained model's seed_bagging: auto (5 seeds on this small city) or a count")
    parser.add_argument("--breakdown", action="store_true", help="time riskmodel's stages on the path")
    parser.add_argument("--profile", action="store_true", help="cProfile Predictor.predict")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.simplefilter("ignore")
    tmp = tempfile.TemporaryDirectory(prefix="bench-latency-")
    uri = args.model or train_small_model(Path(tmp.name), args.seed_bagging)

    import mlflow

    import riskmodel as rm

    t = time.perf_counter()
    predictor = rm.load(uri)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    pyfunc = mlflow.pyfunc.load_model(uri)
    t_pyfunc_load = time.perf_counter() - t
    model = predictor.model
    schema = model._schema()

    events, entities, as_of = one_dispute(predictor, args.events, args.seed)
    # the pyfunc / serving input: entity attributes ride along as columns, as in JSON
    attrs = [c for c in schema.entity_feature_columns if c in entities.columns]
    flat_entities = entities[[schema.entities_id] + attrs].rename(columns={schema.entities_id: schema.entity_col})
    flat_entities = flat_entities.astype({c: str for c in schema.entity_categorical_cols if c in attrs})
    flat = events.merge(flat_entities, on=schema.entity_col, how="left")
    params = {"as_of": as_of.isoformat()}

    cut = pd.DataFrame({schema.entity_col: events[schema.entity_col].iloc[:1], "as_of": [as_of]})
    X = model.transform_features(events, cut, entities=entities)
    row = lightgbm_row(X, model.booster_)
    assert np.array_equal(model.booster_.predict(row), model.booster_.predict(X))

    ours = predictor.predict(events, as_of=as_of, entities=entities)
    served = pyfunc.predict(flat, params=params)
    np.testing.assert_allclose(ours["probability"].to_numpy(), served["probability"].to_numpy())
    print(f"model {uri} (load {t_load * 1e3:.0f} ms, pyfunc load {t_pyfunc_load * 1e3:.0f} ms), "
          f"{len(model.feature_names_)} features; one dispute, {len(events)} events, as_of {as_of}, "
          f"tier {ours['tier'].iloc[0]}, p={ours['probability'].iloc[0]:.3f}")

    paths = {
        "Predictor.predict": lambda: predictor.predict(events, as_of=as_of, entities=entities),
        "Predictor.predict reasons=none": lambda: predictor.predict(events, as_of=as_of, entities=entities,
                                                                    reasons="none"),
        "pyfunc.predict": lambda: pyfunc.predict(flat, params=params),
        "baseline: booster.predict(numpy row)": lambda: model.booster_.predict(row, num_threads=1),
        "baseline: booster.predict(1-row DataFrame)": lambda: model.booster_.predict(X),
        # the machine's speed at the time: the 2 vCPUs here are shared and one of them is
        # often ~1.5x slower than the other, so compare p50s across runs with this line
        "machine reference: sum(range(20_000))": lambda: sum(range(20_000)),
    }
    samples: dict[str, list[np.ndarray]] = {k: [] for k in paths}
    for _ in range(args.runs):
        for name, fn in paths.items():
            samples[name].append(time_calls(fn, args.reps, args.warmup))
    stats = {k: summarise(v) for k, v in samples.items()}
    base = stats["baseline: booster.predict(numpy row)"]["p50"]
    print(f"\n{args.runs} runs x {args.reps} calls after {args.warmup} warm-up; medians over runs (ms):")
    print(f"  {'path':44s} {'p50':>8s} {'p99':>8s} {'mean':>8s}  {'p50 range':>15s}  {'p50 / baseline':>14s}")
    for name, s in stats.items():
        print(f"  {name:44s} {s['p50']:8.2f} {s['p99']:8.2f} {s['mean']:8.2f}  "
              f"{s['p50_min']:6.2f} .. {s['p50_max']:6.2f}  {s['p50'] / base:13.0f}x")
    p50 = stats["Predictor.predict"]["p50"]
    verdict = "meets" if p50 <= TARGET_P50_MS else "MISSES"
    print(f"\nPredictor.predict p50 {p50:.1f} ms {verdict} the {TARGET_P50_MS:g} ms target "
          f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    if args.breakdown:
        breakdown(paths["Predictor.predict"], args.reps, args.warmup, args.runs)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.reps):
            paths["Predictor.predict"]()
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(40)
        if os.environ.get("RISKMODEL_PROFILE_CALLERS"):
            stats.print_callers(os.environ["RISKMODEL_PROFILE_CALLERS"])
    tmp.cleanup()


if __name__ == "__main__":
    main()
