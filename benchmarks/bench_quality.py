"""Model quality: training protocols over seeds and scenarios, and one backtest against the oracle.

Usage::

    python benchmarks/bench_quality.py scenarios                     # small, drift, oracle gap; medians
    python benchmarks/bench_quality.py scenarios --only small-3k --seeds 10 --out results.csv
    python benchmarks/bench_quality.py backtest                      # 50k disputes, ~4 years
    python benchmarks/bench_quality.py backtest --disputes 10000 --oracle-rows 3000   # quick

``scenarios``
-------------
Each scenario simulates a city over 2022-2025 once per seed, trains on the cutoffs whose
90-day outcome was known by 2025-01-01 (events before it) and tests on the cutoffs from
2025-01-01 on (complete windows only). Three models see the same rows and the same features:

* ``new``: :class:`~riskmodel.RiskModel` with its defaults (``protocol="forward"``);
* ``old``: the same with ``protocol="holdout"``, the protocol before forward folds (70 / 15
  / 15 time split, trees never refitted);
* ``lgbm``: a plain LightGBM classifier (200 rounds, 8 leaves, learning rate 0.05, no
  calibration) on the new model's feature matrix, trained on all training rows.

Scenarios: ``small-3k`` (3,000 disputes; with the oracle) and ``small-10k`` (10,000), ``drift-10k``
(10,000 disputes whose escalation hazard falls by 30% a year, ``escalation_trend=-0.35``,
so the test year's base rate is about half the training years') and ``oracle-50k`` (the new
and the old model on every test row; for the scenarios with the oracle, as ``...@oracle-rows``,
against the simulator's true probability on ``--oracle-rows`` of them at most; its Monte Carlo
noise, ``--n-sims`` continuations, lowers the oracle's AUC a little and makes its log loss
meaningless). Reported per scenario and metric: the median over seeds
of each model, and of the paired differences new - old and new - lgbm with a 95% t-interval
of their mean over seeds and the number of seeds where new is better.

``backtest``
------------

Simulates disputes whose true escalation probability is known
(:meth:`Simulation.true_probability`, Monte Carlo with ``--n-sims`` continuations), runs
:func:`riskmodel.evaluation._backtest.backtest` with the oracle, the base rate, a logistic regression on
the count features and an expert checklist as comparators, prints the last fold's table with
95% cluster-bootstrap intervals, and checks the targets:

* model ROC-AUC within 0.01 of the oracle's (on the rows the oracle scored);
* model Brier score within 5% of the oracle's (same rows);
* model ECE <= 0.01 (10 quantile bins, last fold);
* tier hit rates strictly ordered red > yellow > blue;
* model beats every baseline on ROC-AUC and Brier score with non-overlapping intervals.

The oracle costs a few milliseconds per row; when the last fold has more than
``--oracle-rows`` test rows it is run on a random sample of that size (said in the output),
and the model is compared with it on the same rows. Its Monte Carlo noise (standard error
about ``sqrt(p (1 - p) / n_sims)``) slightly lowers its AUC and raises its Brier score, and
its zero estimates make its log loss meaningless; the targets use AUC, Brier and ECE only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from _snapshots import simulated_snapshots

from riskmodel import FeatureBuilder, RiskModel
from riskmodel.evaluation._backtest import backtest

CHECKLIST = {
    "count_threat_90D": 3,
    "count_fight_90D": 2,
    "count_mediation_failed_90D": 2,
    "kw_weapon_30D": 2,
}


def _sampled_oracle(sim, n_rows: int, n_sims: int, seed: int, log: list[str]):
    """Oracle on at most ``n_rows`` random cutoffs; NaN for the others."""

    def oracle(cutoffs: pd.DataFrame) -> np.ndarray:
        out = np.full(len(cutoffs), np.nan)
        rows = np.arange(len(cutoffs))
        if len(cutoffs) > n_rows:
            rows = np.sort(np.random.default_rng(seed).choice(len(cutoffs), n_rows, replace=False))
            log.append(f"oracle run on a random sample of {n_rows:,} of {len(cutoffs):,} test rows")
        else:
            log.append(f"oracle run on all {len(cutoffs):,} test rows")
        t0 = time.perf_counter()
        truth = sim.true_probability(cutoffs.iloc[rows], "90D", n_sims=n_sims, seed=seed)
        out[rows] = truth["probability"].to_numpy()
        log.append(f"oracle: {time.perf_counter() - t0:.1f} s for {len(rows):,} rows, n_sims={n_sims}")
        return out

    return oracle


def backtest_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_quality.py backtest", description="one backtest with the oracle")
    parser.add_argument("--disputes", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2022-01-01")
    parser.add_argument("--end", default="2025-12-31")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--n-sims", type=int, default=200)
    parser.add_argument("--oracle-rows", type=int, default=20_000)
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (1 is robust on a shared machine)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    sim, ev, lab = simulated_snapshots(args.disputes, start=args.start, end=args.end, seed=args.seed)
    t_data = time.perf_counter() - t0
    print(
        f"simulated {args.disputes:,} disputes, {len(sim.events):,} events, {len(lab):,} cutoffs "
        f"({int(lab['censored'].sum()):,} censored) in {t_data:.1f} s"
    )

    model = RiskModel(
        schema=sim.schema,
        features=FeatureBuilder(
            schema=sim.schema,
            streaks=(("mediation_failed", "mediation_success"),),
            keyword_windows=("7D", "30D", "365D"),
        ),
        lgbm_params={"num_threads": args.threads},
        random_state=args.seed,
    )
    log: list[str] = []
    t1 = time.perf_counter()
    result = backtest(
        ev,
        lab,
        model=model,
        entities=sim.entities,
        n_folds=args.folds,
        checklist=CHECKLIST,
        oracle=_sampled_oracle(sim, args.oracle_rows, args.n_sims, args.seed, log),
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
    )
    print(f"backtest: {time.perf_counter() - t1:.1f} s")
    for line in log:
        print(line)
    print()
    print(result.summary())

    m = result.metrics
    ref = "model@oracle_rows" if "model@oracle_rows" in m.index else "model"
    verdict = result.verdict()
    checks = []
    auc_gap = m.loc["oracle", "roc_auc"] - m.loc[ref, "roc_auc"]
    checks.append((
        "ROC-AUC within 0.01 of the oracle",
        auc_gap <= 0.01,
        f"model {m.loc[ref, 'roc_auc']:.4f} vs oracle {m.loc['oracle', 'roc_auc']:.4f} (gap {auc_gap:+.4f}, {ref} rows)",
    ))
    brier_ratio = m.loc[ref, "brier"] / m.loc["oracle", "brier"]
    checks.append((
        "Brier within 5% of the oracle",
        brier_ratio <= 1.05,
        f"model {m.loc[ref, 'brier']:.5f} vs oracle {m.loc['oracle', 'brier']:.5f} (ratio {brier_ratio:.3f})",
    ))
    checks.append(("ECE <= 0.01", m.loc["model", "ece"] <= 0.01, f"ECE {m.loc['model', 'ece']:.4f}"))
    hit = result.tier_table.set_index("tier")["hit_rate"]
    checks.append((
        "tier hit rates red > yellow > blue",
        verdict["tiers_ordered"],
        f"red {hit['red']:.3f}, yellow {hit['yellow']:.3f}, blue {hit['blue']:.3f}",
    ))
    for key in ("auc", "brier"):
        detail = ", ".join(
            f"{b}: {'yes' if verdict[f'{key}_beats_{b}'] else 'no'}"
            f" (paired: {'yes' if verdict[f'{key}_beats_{b}_paired'] else 'no'})"
            for b in ("base_rate", "logistic_counts", "checklist")
            if f"{key}_beats_{b}" in verdict
        )
        checks.append((f"beats every baseline on {key} (non-overlapping intervals)", verdict[f"{key}_beats_all"], detail))
    print("\nTargets:")
    for name, ok, detail in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if all(ok for _, ok, _ in checks) else 1


# ------------------------------------------------------------------------------------------
# scenarios: protocols over seeds

SPLIT = pd.Timestamp("2025-01-01")
HORIZON = "90D"
SCENARIOS = {
    # name: (disputes, simulator overrides, models, oracle)
    "small-3k": (3_000, {}, ("new", "old", "lgbm"), True),
    "small-10k": (10_000, {}, ("new", "old", "lgbm"), False),
    "drift-10k": (10_000, {"escalation_trend": -0.35}, ("new", "old", "lgbm"), False),
    "oracle-50k": (50_000, {}, ("new", "old"), True),
}
METRICS = ("roc_auc", "brier", "log_loss")


def _builder(schema):
    return FeatureBuilder(schema=schema, streaks=(("mediation_failed", "mediation_success"),),
                          keyword_windows=("7D", "30D", "365D"))


def run_seed(name: str, seed: int, *, threads: int, oracle_rows: int, n_sims: int) -> list[dict]:
    """Fit the scenario's models on one seed; one row per (model, metric) with the test value."""
    import warnings

    import lightgbm as lgb

    from riskmodel import DataWarning, make_cutoffs, make_labels, prepare_events, simulate_disputes
    from riskmodel.evaluation._metrics import score_metrics

    n_disputes, overrides, models, with_oracle = SCENARIOS[name]
    sim = simulate_disputes(n_disputes, start="2022-01-01", end="2025-12-31", seed=seed, **overrides)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema, horizon=HORIZON)
    lab = lab[~lab["censored"]].drop(columns="censored").reset_index(drop=True)
    train = lab[lab["as_of"] + pd.Timedelta(HORIZON) <= SPLIT].reset_index(drop=True)
    test = lab[lab["as_of"] >= SPLIT].reset_index(drop=True)
    y = test["label"].to_numpy(dtype=int)
    past = ev.subset(ev.times_ns < SPLIT.value)
    probs, fit_s = {}, {}
    fitted = None
    for model_name in [m for m in models if m != "lgbm"]:
        model = RiskModel(schema=sim.schema, features=_builder(sim.schema), lgbm_params={"num_threads": threads},
                          random_state=seed, protocol="forward" if model_name == "new" else "holdout")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            model.fit(past, train, entities=sim.entities)
        fit_s[model_name] = time.perf_counter() - t0
        probs[model_name] = model.predict_proba(ev, test, entities=sim.entities)[:, 1]
        if model_name == "new":
            fitted = model
    if "lgbm" in models:
        X_train = fitted.transform_features(past, train, entities=sim.entities)
        X_test = fitted.transform_features(ev, test, entities=sim.entities)
        t0 = time.perf_counter()
        plain = lgb.LGBMClassifier(n_estimators=200, num_leaves=8, learning_rate=0.05, random_state=seed,
                                   n_jobs=threads, verbose=-1)
        plain.fit(X_train, train["label"].to_numpy(dtype=int))
        fit_s["lgbm"] = time.perf_counter() - t0
        probs["lgbm"] = plain.predict_proba(X_test)[:, 1]
    out = []

    def record(scenario, yy, scored):
        for model_name, p in scored.items():
            m = score_metrics(yy, p)
            for metric in METRICS:
                out.append({"scenario": scenario, "seed": seed, "model": model_name, "metric": metric,
                            "value": m[metric], "n_test": len(yy), "positives": int(yy.sum()),
                            "train_rows": len(train), "train_positives": int(train["label"].sum()),
                            "fit_s": fit_s.get(model_name, np.nan), "mean_p": float(np.mean(p)),
                            "test_rate": float(yy.mean())})

    record(name, y, probs)  # every test row
    if with_oracle:  # the oracle costs milliseconds per row: on a sample, the models on the same rows
        rows = np.arange(len(test))
        if len(test) > oracle_rows:
            rows = np.sort(np.random.default_rng(seed).choice(len(test), oracle_rows, replace=False))
        truth = sim.true_probability(test.iloc[rows][["dispute_id", "as_of"]], HORIZON, n_sims=n_sims, seed=seed)
        sample = {k: v[rows] for k, v in probs.items()}
        sample["oracle"] = truth["probability"].to_numpy()
        record(f"{name}@oracle-rows", y[rows], sample)
    return out


def _t_interval(d: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(d) < 2:
        return (np.nan, np.nan)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return (d.mean() - half, d.mean() + half)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and metric: medians per model, paired differences with intervals."""
    lines = []
    for (scenario, metric), part in results.groupby(["scenario", "metric"], sort=False):
        wide = part.pivot(index="seed", columns="model", values="value")
        row = {"scenario": scenario, "metric": metric, "seeds": len(wide)}
        for model_name in wide.columns:
            row[model_name] = float(wide[model_name].median())
        better = (lambda d: d > 0) if metric == "roc_auc" else (lambda d: d < 0)
        for other in ("old", "lgbm", "oracle"):
            if other in wide.columns and "new" in wide.columns:
                d = (wide["new"] - wide[other]).to_numpy()
                lo, hi = _t_interval(d)
                row[f"new-{other}"] = float(np.median(d))
                row[f"new-{other} 95% CI (mean)"] = f"[{lo:+.4f}, {hi:+.4f}]"
                row[f"new better than {other}"] = f"{int(better(d).sum())}/{len(d)}"
        lines.append(row)
    return pd.DataFrame(lines)


def scenarios_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_quality.py scenarios", description="protocols over seeds")
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds-50k", type=int, default=3, help="seeds of the oracle-50k scenario (slow)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--oracle-rows", type=int, default=60_000,
                        help="oracle on at most this many test rows (default: all of oracle-50k's ~54k, about a "
                             "minute per seed; on a 5,000-row sample its gap moved by +-0.008 from seed to seed)")
    parser.add_argument("--n-sims", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the per-seed results here (CSV)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = []
    for name in args.only:
        n_seeds = args.seeds_50k if name == "oracle-50k" else args.seeds
        for seed in range(1, n_seeds + 1):
            t1 = time.perf_counter()
            rows = run_seed(name, seed, threads=args.threads, oracle_rows=args.oracle_rows, n_sims=args.n_sims)
            results.extend(rows)
            brief = {r["model"]: round(r["value"], 4) for r in rows if r["metric"] == "roc_auc"}
            print(f"{name} seed {seed}: AUC {brief}, {time.perf_counter() - t1:.0f} s", flush=True)
    frame = pd.DataFrame(results)
    if args.out:
        frame.to_csv(args.out, index=False)
    table = summarise(frame)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print()
        print(table.to_string(index=False))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "scenarios":
        return scenarios_main(argv[1:])
    if argv and argv[0] == "backtest":
        argv = argv[1:]
    return backtest_main(argv)


if __name__ == "__main__":
    sys.exit(main())
