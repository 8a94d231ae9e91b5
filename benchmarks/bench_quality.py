"""Model quality against the simulator's oracle and simple baselines, in one backtest.

Usage::

    python benchmarks/bench_quality.py                       # 50k disputes, ~4 years
    python benchmarks/bench_quality.py --disputes 10000 --oracle-rows 3000   # quick

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
